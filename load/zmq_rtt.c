/*
 * zmq_rtt.c - wsgate-zmq-rtt: the floor under the worker hop.
 *
 * A DEALER in this process sends a message to a ROUTER in a child
 * process over loopback TCP, which sends it straight back; one message
 * out at a time, N times, optionally with a pause between them. That is
 * the ZeroMQ part of a request through wsgate (gateway ROUTER <-> worker
 * DEALER, an I/O thread on each side) with nothing else: no websocket,
 * no envelope, no actor. With a pause, every round trip finds all four
 * threads asleep, which on a VM means waking halted virtual CPUs: the
 * cost an open-loop client at a modest rate pays on every hop.
 *
 *   wsgate-zmq-rtt [--n N] [--gap-us US] [--size BYTES]
 *
 * Prints one line: round trips, then p50/p90/p99/max in microseconds.
 * Loopback only; bounded by --n (at most 1,000,000).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define RTT_MAX_N 1000000
#define RTT_MAX_SIZE 65536
#define RTT_WARMUP 200
#define RTT_ENDPOINT_MAX 64

static double
s_now_us(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int
s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The child: a ROUTER on a free loopback port that sends every message
 * back to its sender. Its endpoint goes up the pipe. */
static int
s_echo(int ready_fd)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    char endpoint[RTT_ENDPOINT_MAX] = "";
    size_t len = sizeof(endpoint);

    if (!s || zmq_bind(s, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0) {
        fprintf(stderr, "wsgate-zmq-rtt: bind: %s\n", zmq_strerror(errno));
        return 1;
    }
    if (write(ready_fd, endpoint, sizeof(endpoint)) != (ssize_t)sizeof(endpoint))
        return 1;
    close(ready_fd);
    for (;;) {
        zmq_msg_t id, m;

        zmq_msg_init(&id);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&id, s, 0) < 0 || zmq_msg_recv(&m, s, 0) < 0 ||
            zmq_msg_send(&id, s, ZMQ_SNDMORE) < 0 || zmq_msg_send(&m, s, 0) < 0)
            return 1;
    }
}

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: wsgate-zmq-rtt [--n N] [--gap-us US] [--size BYTES]\n"
               "  --n N        round trips measured (10000; at most 1000000)\n"
               "  --gap-us US  pause between round trips (0)\n"
               "  --size B     message bytes (64)\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {{"n", required_argument, NULL, 'n'},
                                         {"gap-us", required_argument, NULL, 'g'},
                                         {"size", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    long n = 10000, gap = 0, size = 64;
    char endpoint[RTT_ENDPOINT_MAX];
    int o, pipefd[2], rc = 1, status;
    pid_t child;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        long v;

        if (o == 'h') {
            s_usage(stdout);
            return 0;
        }
        if (o == '?') {
            s_usage(stderr);
            return 2;
        }
        v = strtol(optarg, &end, 10);
        if (*end || v < 0) {
            fprintf(stderr, "wsgate-zmq-rtt: not a number: %s\n", optarg);
            return 2;
        }
        if (o == 'n')
            n = v;
        else if (o == 'g')
            gap = v;
        else
            size = v;
    }
    if (n < 1 || n > RTT_MAX_N || size < 1 || size > RTT_MAX_SIZE || gap > 1000000) {
        fprintf(stderr, "wsgate-zmq-rtt: --n 1..%d, --size 1..%d, --gap-us at most 1000000\n",
                RTT_MAX_N, RTT_MAX_SIZE);
        return 2;
    }
    if (pipe(pipefd) != 0)
        return 1;
    child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        close(pipefd[0]);
        _exit(s_echo(pipefd[1]));
    }
    close(pipefd[1]);
    if (read(pipefd[0], endpoint, sizeof(endpoint)) != (ssize_t)sizeof(endpoint) ||
        !memchr(endpoint, 0, sizeof(endpoint))) {
        fprintf(stderr, "wsgate-zmq-rtt: the echo process did not start\n");
        waitpid(child, NULL, 0);
        return 1;
    }
    close(pipefd[0]);

    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    double *lat = malloc((size_t)n * sizeof(*lat));
    char *buf = calloc(1, (size_t)size);
    int linger = 0, tmo = 5000;

    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    if (!lat || !buf || zmq_connect(s, endpoint) != 0)
        goto out;
    for (long i = 0; i < RTT_WARMUP + n; i++) {
        double t = s_now_us();

        if (zmq_send(s, buf, (size_t)size, 0) < 0 || zmq_recv(s, buf, (size_t)size, 0) < 0) {
            fprintf(stderr, "wsgate-zmq-rtt: round trip %ld: %s\n", i, zmq_strerror(errno));
            goto out;
        }
        if (i >= RTT_WARMUP)
            lat[i - RTT_WARMUP] = s_now_us() - t;
        if (gap)
            usleep((useconds_t)gap);
    }
    qsort(lat, (size_t)n, sizeof(*lat), s_cmp);
    printf("zmq round trips: %ld of %ld bytes, gap %ld us: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f "
           "us\n",
           n, size, gap, lat[n / 2], lat[n * 9 / 10], lat[n * 99 / 100], lat[n - 1]);
    rc = 0;
out:
    free(lat);
    free(buf);
    zmq_close(s);
    zmq_ctx_term(ctx);
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    return rc;
}
