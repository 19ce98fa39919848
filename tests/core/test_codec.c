/* Codec round trips in both encodings, and rejection of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sb_b64.h"
#include "sb_codec.h"
#include "sb_error.h"
#include "sb_utf8.h"

static Sbp__Frame *roundtrip(sb_encoding enc, const Sbp__Frame *in)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(enc, in, &b), 0);
    Sbp__Frame *out = NULL;
    assert_int_equal(sb_frame_decode(enc, b.data, b.len, &out), 0);
    sb_buf_free(&b);
    return out;
}

static void test_send_roundtrip(void **state)
{
    (void)state;
    for (int enc = 0; enc < 2; enc++) {
        uint8_t id[16];
        for (int i = 0; i < 16; i++)
            id[i] = (uint8_t)(i * 17 + 3);
        Sbp__Send s = SBP__SEND__INIT;
        s.client_msg_id.data = id;
        s.client_msg_id.len = 16;
        s.conv_id = 42;
        s.type = SBP__MSG_TYPE__MSG_TEXT;
        s.body = "hello \xe4\xbd\xa0\xe5\xa5\xbd \"quoted\"\n";
        s.quote_seq = 7;
        Sbp__Frame f = SBP__FRAME__INIT;
        f.rid = 99;
        f.body_case = SBP__FRAME__BODY_SEND;
        f.send = &s;
        Sbp__Frame *o = roundtrip((sb_encoding)enc, &f);
        assert_int_equal(o->rid, 99);
        assert_int_equal(o->body_case, SBP__FRAME__BODY_SEND);
        assert_int_equal(o->send->conv_id, 42);
        assert_int_equal(o->send->quote_seq, 7);
        assert_int_equal(o->send->type, SBP__MSG_TYPE__MSG_TEXT);
        assert_string_equal(o->send->body, s.body);
        assert_int_equal(o->send->client_msg_id.len, 16);
        assert_memory_equal(o->send->client_msg_id.data, id, 16);
        assert_int_equal(sb_frame_check_utf8(o), 0);
        assert_string_equal(sb_frame_kind_name(o), "send");
        sb_frame_free(o);
    }
}

static void test_push_repeated_roundtrip(void **state)
{
    (void)state;
    for (int enc = 0; enc < 2; enc++) {
        Sbp__Message m[3];
        Sbp__Message *mp[3];
        char *tags[] = {"vip", "refund"};
        for (int i = 0; i < 3; i++) {
            sbp__message__init(&m[i]);
            m[i].msg_id = 1000 + (uint64_t)i;
            m[i].conv_id = 5;
            m[i].seq = (uint64_t)i + 1;
            m[i].sender = "alice";
            m[i].body = "x";
            m[i].server_ts = 1790000000000LL + i;
            m[i].n_tags = 2;
            m[i].tags = tags;
            mp[i] = &m[i];
        }
        Sbp__Push p = SBP__PUSH__INIT;
        p.n_messages = 3;
        p.messages = mp;
        Sbp__Frame f = SBP__FRAME__INIT;
        f.body_case = SBP__FRAME__BODY_PUSH;
        f.push = &p;
        Sbp__Frame *o = roundtrip((sb_encoding)enc, &f);
        assert_int_equal(o->push->n_messages, 3);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(o->push->messages[i]->seq, i + 1);
            assert_int_equal(o->push->messages[i]->msg_id, 1000 + i);
            assert_int_equal(o->push->messages[i]->server_ts,
                             1790000000000LL + i);
            assert_int_equal(o->push->messages[i]->n_tags, 2);
            assert_string_equal(o->push->messages[i]->tags[1], "refund");
        }
        sb_frame_free(o);
    }
}

/* PUSH frames built from messages encoded one by one (the gateway's
 * encode-once batching): the bytes are those of sb_frame_encode() for the
 * same frame, and the normal decoder gets the messages back in order. */
#define PB_MSGS 70

static void test_push_builder(void **state)
{
    (void)state;
    static char big[16501]; /* 3-byte lengths: item and frame */
    memset(big, 'y', sizeof big - 1);
    static Sbp__Message m[PB_MSGS];
    Sbp__Message *mp[PB_MSGS];
    char bodies[PB_MSGS][48];
    uint8_t id[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(255 - i);
    char *args[] = {"bob", "2"};
    Sbp__Event ev = SBP__EVENT__INIT;
    ev.key = "conv.assigned";
    ev.n_args = 2;
    ev.args = args;
    for (int i = 0; i < PB_MSGS; i++) {
        sbp__message__init(&m[i]);
        m[i].msg_id = i == 3 ? UINT64_MAX : 5000 + (uint64_t)i;
        m[i].conv_id = 1 + (uint64_t)i % 3;
        m[i].seq = 1 + (uint64_t)i / 3;
        m[i].sender = "alice";
        m[i].sender_device = "a1";
        m[i].client_msg_id.data = id;
        m[i].client_msg_id.len = 16;
        snprintf(bodies[i], sizeof bodies[i],
                 "m%d \xe4\xbd\xa0\xe5\xa5\xbd \"q\"\n", i);
        m[i].body = i == 5 ? big : bodies[i];
        m[i].server_ts = 1790000000000LL + i;
        if (i == 7) {
            m[i].type = SBP__MSG_TYPE__MSG_EVENT;
            m[i].event = &ev;
        }
        mp[i] = &m[i];
    }
    for (int enc = 0; enc < 2; enc++) {
        sb_buf item[PB_MSGS];
        for (int i = 0; i < PB_MSGS; i++) {
            item[i] = (sb_buf)SB_BUF_INIT;
            assert_int_equal(
                sb_push_item_encode((sb_encoding)enc, &m[i], &item[i]), 0);
            assert_true(item[i].len > 0);
        }
        /* Frames of 1..PB_MSGS messages, several in one buffer, after
         * other bytes: the span returned is the frame. */
        sb_buf out = SB_BUF_INIT;
        assert_int_equal(sb_buf_append(&out, "junk", 4), 0);
        for (size_t n = 1; n <= PB_MSGS; n += n < 4 ? 1 : 11) {
            sb_push_builder b;
            assert_int_equal(sb_push_begin(&b, (sb_encoding)enc, &out), 0);
            for (size_t i = 0; i < n; i++) {
                size_t before = sb_push_len(&b);
                assert_int_equal(sb_push_add(&b, item[i].data, item[i].len), 0);
                assert_true(sb_push_len(&b) >= before + item[i].len);
            }
            size_t bound = sb_push_len(&b);
            const uint8_t *p = NULL;
            size_t len = 0;
            sb_push_end(&b, &p, &len);
            assert_true(len <= bound);

            Sbp__Push pu = SBP__PUSH__INIT;
            pu.n_messages = n;
            pu.messages = mp;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_PUSH;
            f.push = &pu;
            sb_buf want = SB_BUF_INIT;
            assert_int_equal(sb_frame_encode((sb_encoding)enc, &f, &want), 0);
            assert_int_equal(len, want.len);
            assert_memory_equal(p, want.data, len);
            sb_buf_free(&want);

            Sbp__Frame *o = NULL;
            assert_int_equal(sb_frame_decode((sb_encoding)enc, p, len, &o), 0);
            assert_int_equal(o->rid, 0);
            assert_int_equal(o->body_case, SBP__FRAME__BODY_PUSH);
            assert_int_equal(o->push->n_messages, n);
            for (size_t i = 0; i < n; i++) {
                const Sbp__Message *g = o->push->messages[i];
                assert_int_equal(g->msg_id, m[i].msg_id);
                assert_int_equal(g->conv_id, m[i].conv_id);
                assert_int_equal(g->seq, m[i].seq);
                assert_int_equal(g->server_ts, m[i].server_ts);
                assert_string_equal(g->body, m[i].body);
                assert_string_equal(g->sender_device, "a1");
                assert_memory_equal(g->client_msg_id.data, id, 16);
                assert_int_equal(g->type, m[i].type);
                if (i == 7) {
                    assert_string_equal(g->event->key, "conv.assigned");
                    assert_int_equal(g->event->n_args, 2);
                    assert_string_equal(g->event->args[1], "2");
                }
            }
            sb_frame_free(o);
        }
        sb_buf_free(&out);
        for (int i = 0; i < PB_MSGS; i++)
            sb_buf_free(&item[i]);
    }
}

static void test_json_text_forms(void **state)
{
    (void)state;
    /* Enums by name or number, 64-bit ints as strings, unknown keys ignored. */
    const char *txt =
        "{\"rid\":3,\"send\":{\"conv_id\":\"18446744073709551615\","
        "\"type\":\"MSG_CARD\",\"body\":\"b\",\"future\":1,"
        "\"client_msg_id\":\"AAECAwQFBgcICQoLDA0ODw==\"}}";
    Sbp__Frame *o = NULL;
    assert_int_equal(
        sb_frame_decode(SB_ENC_JSON, (const uint8_t *)txt, strlen(txt), &o), 0);
    assert_int_equal(o->send->conv_id, UINT64_MAX);
    assert_int_equal(o->send->type, SBP__MSG_TYPE__MSG_CARD);
    assert_int_equal(o->send->client_msg_id.len, 16);
    assert_int_equal(o->send->client_msg_id.data[15], 15);
    sb_frame_free(o);

    const char *txt2 = "{\"ack\":{\"conv_id\":1,\"seq\":2}}";
    assert_int_equal(
        sb_frame_decode(SB_ENC_JSON, (const uint8_t *)txt2, strlen(txt2), &o),
        0);
    assert_int_equal(o->body_case, SBP__FRAME__BODY_ACK);
    assert_int_equal(o->ack->seq, 2);
    sb_frame_free(o);

    /* No known kind: decodes, with no body (the server answers
     * ERR_UNKNOWN_TYPE). */
    const char *txt3 = "{\"teleport\":{}}";
    assert_int_equal(
        sb_frame_decode(SB_ENC_JSON, (const uint8_t *)txt3, strlen(txt3), &o),
        0);
    assert_int_equal(o->body_case, SBP__FRAME__BODY__NOT_SET);
    sb_frame_free(o);
}

/* Doubles (a report's averages) in both encodings: exact (-0.0 is a zero,
 * left out as protobuf-c leaves it out), and NaN and the infinities as the
 * strings of protobuf's JSON mapping. */
static void test_doubles(void **state)
{
    (void)state;
    const double V[] = {13.0 / 3.0, -0.0,     0.75,     1e300,
                        NAN,        INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof V / sizeof *V; i++) {
        Sbp__ReportRow row = SBP__REPORT_ROW__INIT;
        row.csat_average = V[i];
        Sbp__ReportResp r = SBP__REPORT_RESP__INIT;
        r.total = &row;
        Sbp__Frame f = SBP__FRAME__INIT;
        f.body_case = SBP__FRAME__BODY_REPORT_RESP;
        f.report_resp = &r;
        for (int enc = 0; enc < 2; enc++) {
            sb_buf b = SB_BUF_INIT;
            assert_int_equal(sb_frame_encode((sb_encoding)enc, &f, &b), 0);
            Sbp__Frame *o = NULL;
            assert_int_equal(
                sb_frame_decode((sb_encoding)enc, b.data, b.len, &o), 0);
            double got = o->report_resp->total->csat_average;
            if (isnan(V[i]))
                assert_true(isnan(got));
            else
                assert_true(got == V[i]);
            sb_frame_free(o);
            sb_buf_free(&b);
        }
    }
    const char *txt = "{\"report_resp\":{\"total\":{\"csat_average\":"
                      "\"Infinity\",\"csat_response_rate\":\"NaN\"}}}";
    Sbp__Frame *o = NULL;
    assert_int_equal(
        sb_frame_decode(SB_ENC_JSON, (const uint8_t *)txt, strlen(txt), &o), 0);
    assert_true(isinf(o->report_resp->total->csat_average));
    assert_true(isnan(o->report_resp->total->csat_response_rate));
    sb_frame_free(o);
    const char *bad =
        "{\"report_resp\":{\"total\":{\"csat_average\":\"nan\"}}}";
    assert_int_equal(
        sb_frame_decode(SB_ENC_JSON, (const uint8_t *)bad, strlen(bad), &o),
        SB_E_BAD_FRAME);
}

static void test_bad_input(void **state)
{
    (void)state;
    Sbp__Frame *o = (Sbp__Frame *)1;
    const char *bad_json[] = {
        "",
        "{",
        "[1,2]",
        "{\"rid\":-1}",
        "{\"rid\":4294967296}",
        "{\"send\":{\"conv_id\":-5}}",
        "{\"send\":{\"type\":\"NOPE\"}}",
        "{\"send\":{\"client_msg_id\":\"!!!\"}}",
        "{\"send\":[]}",
        "{\"send\":{\"body\":5}}",
        "{\"rid\":1,\"rid\":2}",
        "{\"sync\":{\"cursors\":{}}}",
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        int rc = sb_frame_decode(SB_ENC_JSON, (const uint8_t *)bad_json[i],
                                 strlen(bad_json[i]), &o);
        assert_int_equal(rc, SB_E_BAD_FRAME);
        assert_null(o);
    }
    /* Bytes that are not UTF-8 are no JSON text at all (a binary message
     * on a JSON session): not a frame of the encoding. */
    const uint8_t bad_utf8[] = "{\"send\":{\"body\":\"\xc0\xaf\"}}";
    assert_int_equal(
        sb_frame_decode(SB_ENC_JSON, bad_utf8, sizeof bad_utf8 - 1, &o),
        SB_E_BAD_FRAME);
    const uint8_t binary[] = {0x08, 0x07, 0x62, 0x02, 0x08, 0xff};
    assert_int_equal(sb_frame_decode(SB_ENC_JSON, binary, sizeof binary, &o),
                     SB_E_BAD_FRAME);
    assert_null(o);
    /* Truncated protobuf: a length prefix pointing past the end. */
    const uint8_t trunc[] = {0x62, 0x10, 0x08, 0x01};
    assert_int_equal(sb_frame_decode(SB_ENC_PROTO, trunc, sizeof trunc, &o),
                     SB_E_BAD_FRAME);
    /* Protobuf string with invalid UTF-8 decodes, and the check refuses it. */
    const uint8_t badstr[] = {0x62, 0x04, 0x22, 0x02, 0xed, 0xa0};
    assert_int_equal(sb_frame_decode(SB_ENC_PROTO, badstr, sizeof badstr, &o),
                     0);
    assert_int_equal(sb_frame_check_utf8(o), SB_E_BAD_UTF8);
    sb_frame_free(o);
}

/* A string holding U+0000 is refused in both encodings with ERR_BAD_UTF8,
 * never cut at the NUL; the checked decode hands the frame back so that
 * its rid and client_msg_id can be answered. */
static void test_decode_nul(void **state)
{
    (void)state;
    Sbp__Send s = SBP__SEND__INIT;
    s.conv_id = 3;
    s.body = "a?b";
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = 9;
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, &f, &b), 0);
    uint8_t *q = memchr(b.data, '?', b.len);
    assert_non_null(q);
    *q = 0;
    Sbp__Frame *o = NULL;
    assert_int_equal(sb_frame_decode(SB_ENC_PROTO, b.data, b.len, &o),
                     SB_E_BAD_UTF8);
    assert_null(o);
    assert_int_equal(sb_frame_decode_checked(SB_ENC_PROTO, b.data, b.len, &o),
                     SB_E_BAD_UTF8);
    assert_non_null(o);
    assert_int_equal(o->rid, 9);
    sb_frame_free(o);
    sb_buf_free(&b);
    /* A NUL inside a nested message's string (a quick reply's title). */
    Sbp__QuickReply qr = SBP__QUICK_REPLY__INIT;
    qr.title = "x?y";
    Sbp__QuickReply *qrs[1] = {&qr};
    s.body = "ok";
    s.n_quick_replies = 1;
    s.quick_replies = qrs;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, &f, &b), 0);
    q = memchr(b.data, '?', b.len);
    *q = 0;
    assert_int_equal(sb_frame_decode(SB_ENC_PROTO, b.data, b.len, &o),
                     SB_E_BAD_UTF8);
    sb_buf_free(&b);
    /* Bytes fields may hold anything. */
    uint8_t id[16] = {0};
    s.n_quick_replies = 0;
    s.client_msg_id.data = id;
    s.client_msg_id.len = sizeof id;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, &f, &b), 0);
    assert_int_equal(sb_frame_decode_checked(SB_ENC_PROTO, b.data, b.len, &o),
                     0);
    sb_frame_free(o);
    sb_buf_free(&b);
    /* JSON: "\u0000" in a string, the same refusal. */
    const char *js = "{\"rid\":4,\"send\":{\"body\":\"a\\u0000b\"}}";
    assert_int_equal(
        sb_frame_decode(SB_ENC_JSON, (const uint8_t *)js, strlen(js), &o),
        SB_E_BAD_UTF8);
    assert_null(o);
    assert_int_equal(sb_frame_decode_checked(SB_ENC_JSON, (const uint8_t *)js,
                                             strlen(js), &o),
                     SB_E_BAD_UTF8);
    assert_int_equal(o->rid, 4);
    sb_frame_free(o);
}

/* Found by fuzz_proto: an empty frame encodes to nothing, into a buffer
 * that has no storage yet, and decodes back in both encodings. */
static void test_empty_frame(void **state)
{
    (void)state;
    Sbp__Frame f = SBP__FRAME__INIT;
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, &f, &b), 0);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    Sbp__Frame *out = roundtrip(SB_ENC_PROTO, &f);
    assert_int_equal(out->body_case, SBP__FRAME__BODY__NOT_SET);
    sb_frame_free(out);
    out = roundtrip(SB_ENC_JSON, &f);
    assert_int_equal(out->body_case, SBP__FRAME__BODY__NOT_SET);
    sb_frame_free(out);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(sb_utf8_valid("abc", 3));
    assert_true(sb_utf8_valid("\xe4\xbd\xa0\xf0\x9f\x98\x80", 7));
    assert_false(sb_utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    assert_false(sb_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(sb_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(sb_utf8_valid("\xe4\xbd", 2));         /* truncated */
    assert_false(sb_utf8_valid("\xff", 1));
}

static void test_b64(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                         "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        uint8_t back[16];
        sb_b64_encode((const uint8_t *)in[i], strlen(in[i]), out, 0);
        assert_string_equal(out, std[i]);
        long n = sb_b64_decode(out, strlen(out), back);
        assert_int_equal(n, (long)strlen(in[i]));
        assert_memory_equal(back, in[i], (size_t)n);
    }
    uint8_t tmp[8];
    assert_int_equal(sb_b64_decode("Zh==", 4, tmp), -1); /* non-canonical */
    assert_int_equal(sb_b64_decode("Z", 1, tmp), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_roundtrip),
        cmocka_unit_test(test_push_repeated_roundtrip),
        cmocka_unit_test(test_push_builder),
        cmocka_unit_test(test_json_text_forms),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_decode_nul),
        cmocka_unit_test(test_empty_frame),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
