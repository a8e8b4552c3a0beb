/*
 * json_ref.h - the jansson reference implementation (json_ref.c) of the
 * envelope codecs, for differential tests. Same contracts as envelope.h.
 */
#ifndef WSGATE_JSON_REF_H
#define WSGATE_JSON_REF_H

#include "envelope.h"

proto_rc_t ref_envelope_decode(proto_enc_t enc, const uint8_t *in, size_t len, proto_buf_t *scratch,
                               proto_envelope_t *env, const char **err);
proto_rc_t ref_envelope_encode_res(proto_enc_t enc, const proto_id_t *id, proto_span_t data,
                                   proto_buf_t *out);
proto_rc_t ref_envelope_encode_err(proto_enc_t enc, const proto_id_t *id, proto_span_t code,
                                   proto_span_t msg, proto_buf_t *out);
proto_rc_t ref_envelope_encode_push(proto_enc_t enc, proto_span_t svc, proto_span_t data,
                                    proto_buf_t *out);
proto_rc_t ref_envelope_encode_msg(proto_enc_t enc, proto_span_t channel, proto_span_t epoch,
                                   uint64_t offset, proto_span_t user, proto_span_t data,
                                   proto_buf_t *out);
proto_rc_t ref_envelope_encode_presence(proto_enc_t enc, bool join, proto_span_t channel,
                                        proto_span_t user, proto_buf_t *out);
proto_rc_t ref_json_to_mpk(const uint8_t *json, size_t len, proto_buf_t *out);
proto_rc_t ref_mpk_to_json(proto_span_t mpk, proto_buf_t *out);

#endif
