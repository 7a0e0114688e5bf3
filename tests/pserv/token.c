/*
 * JWT-shaped tokens without a crypto library, and a tiny JSON scanner.
 *
 *   token = base64url(header) "." base64url(claims) "." hex(fnv1a32(secret,
 *           base64url(header) "." base64url(claims)))
 *
 * This is NOT secure; it only has to look like the real thing.
 */
#include "pserv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char secret[] = "pserv-sample-secret";
static const char header_json[] = "{\"alg\":\"FNV\"}";
static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding; returns output length or 0 if it won't fit */
static size_t b64url_encode(char *out, size_t outsz, const unsigned char *in,
                            size_t n)
{
    size_t i, o = 0;

    if ((n + 2) / 3 * 4 + 1 > outsz)
        return 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = b64chars[v >> 6 & 63];
        out[o++] = b64chars[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = b64chars[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '-') return 62;
    if (ch == '_') return 63;
    return -1;
}

/* decode n chars; returns decoded length or -1; output NUL-terminated */
static long b64url_decode(unsigned char *out, size_t outsz, const char *in,
                          size_t n)
{
    size_t i, o = 0;
    unsigned acc = 0;
    int bits = 0;

    if (n % 4 == 1 || n / 4 * 3 + 3 >= outsz)
        return -1;
    for (i = 0; i < n; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    out[o] = '\0';
    return (long)o;
}

static unsigned fnv1a32(const char *data, size_t n)
{
    unsigned h = 2166136261u;
    size_t i;

    for (i = 0; secret[i] != '\0'; i++) {
        h ^= (unsigned char)secret[i];
        h *= 16777619u;
    }
    for (i = 0; i < n; i++) {
        h ^= (unsigned char)data[i];
        h *= 16777619u;
    }
    return h;
}

int token_make(const char *sub, time_t iat, time_t exp,
               char *tok, size_t toksz, char *claims, size_t claimsz)
{
    char esc[128];
    size_t o, n;
    int cl;

    json_escape(esc, sizeof esc, sub);
    cl = snprintf(claims, claimsz, "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
                  esc, (long long)iat, (long long)exp);
    if (cl < 0 || (size_t)cl >= claimsz)
        return -1;
    o = b64url_encode(tok, toksz, (const unsigned char *)header_json,
                      strlen(header_json));
    if (o == 0 || o + 2 >= toksz)
        return -1;
    tok[o++] = '.';
    n = b64url_encode(tok + o, toksz - o, (const unsigned char *)claims,
                      (size_t)cl);
    if (n == 0)
        return -1;
    o += n;
    if (o + 10 > toksz)
        return -1;
    snprintf(tok + o, toksz - o, ".%08x", fnv1a32(tok, o));
    return 0;
}

/* Returns 1 when tok is correctly signed and not expired. */
int token_verify(const char *tok, char *claims, size_t claimsz)
{
    const char *d1, *d2, *e;
    unsigned char payload[512];
    char sig[16];
    long plen;
    long long exp;
    size_t n = strlen(tok);

    if (n > 400)
        return 0;
    d1 = strchr(tok, '.');
    if (d1 == NULL)
        return 0;
    d2 = strchr(d1 + 1, '.');
    if (d2 == NULL || d1 == tok || d2 == d1 + 1)
        return 0;
    snprintf(sig, sizeof sig, "%08x", fnv1a32(tok, (size_t)(d2 - tok)));
    if (strcmp(d2 + 1, sig) != 0)
        return 0;
    plen = b64url_decode(payload, sizeof payload, d1 + 1, (size_t)(d2 - d1 - 1));
    if (plen <= 0)
        return 0;
    e = strstr((const char *)payload, "\"exp\":");
    if (e == NULL)
        return 0;
    exp = strtoll(e + 6, NULL, 10);
    if (exp <= (long long)time(NULL))
        return 0;
    if ((size_t)plen >= claimsz)
        return 0;
    memcpy(claims, payload, (size_t)plen + 1);
    return 1;
}

/* ---- JSON ------------------------------------------------------------- */

size_t json_escape(char *out, size_t outsz, const char *s)
{
    size_t o = 0;

    if (outsz == 0)
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        char tmp[8];
        size_t tl;
        if (ch == '"' || ch == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)ch;
            tl = 2;
        } else if (ch < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", ch);
            tl = 6;
        } else {
            tmp[0] = (char)ch;
            tl = 1;
        }
        if (o + tl >= outsz)
            break;
        memcpy(out + o, tmp, tl);
        o += tl;
    }
    out[o] = '\0';
    return o;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* p points at '"'.  Copies (truncated) contents into out when out != NULL. */
static const char *scan_string(const char *p, char *out, size_t outsz)
{
    size_t o = 0;

    if (*p != '"')
        return NULL;
    p++;
    for (;;) {
        char ch = *p++;
        if (ch == '\0')
            return NULL;
        if (ch == '"')
            break;
        if (ch == '\\') {
            char e = *p++;
            switch (e) {
            case '"': case '\\': case '/': ch = e; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                int k;
                for (k = 0; k < 4; k++) {
                    char h = *p;
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                          (h >= 'A' && h <= 'F')))
                        return NULL;
                    p++;
                }
                ch = '?';
                break;
            }
            default:
                return NULL;
            }
        }
        if (out != NULL && o + 1 < outsz)
            out[o++] = ch;
        else if (out != NULL)
            out[0] = '\x01';    /* too long: poison so it never matches */
    }
    if (out != NULL && outsz > 0)
        out[o] = '\0';
    return p;
}

static const char *skip_value(const char *p, int depth)
{
    p = skip_ws(p);
    if (depth > 32)
        return NULL;
    if (*p == '"')
        return scan_string(p, NULL, 0);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = skip_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                p = scan_string(skip_ws(p), NULL, 0);
                if (p == NULL)
                    return NULL;
                p = skip_ws(p);
                if (*p != ':')
                    return NULL;
                p++;
            }
            p = skip_value(p, depth + 1);
            if (p == NULL)
                return NULL;
            p = skip_ws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == close)
                return p + 1;
            return NULL;
        }
    }
    if (strncmp(p, "true", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    if (strncmp(p, "null", 4) == 0)
        return p + 4;
    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        const char *s = p;
        if (*p == '-')
            p++;
        while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
               *p == 'E' || *p == '+' || *p == '-')
            p++;
        return p > s ? p : NULL;
    }
    return NULL;
}

/* Parse {"username":"...","password":"...", ...}.  0 on success. */
int json_login(const char *s, char *user, size_t usz, char *pass, size_t psz)
{
    const char *p = skip_ws(s);
    int have_user = 0, have_pass = 0;

    if (*p != '{')
        return -1;
    p = skip_ws(p + 1);
    if (*p == '}')
        return -1;
    for (;;) {
        char key[32];
        p = scan_string(p, key, sizeof key);
        if (p == NULL)
            return -1;
        p = skip_ws(p);
        if (*p != ':')
            return -1;
        p = skip_ws(p + 1);
        if (strcmp(key, "username") == 0 && *p == '"') {
            p = scan_string(p, user, usz);
            have_user = 1;
        } else if (strcmp(key, "password") == 0 && *p == '"') {
            p = scan_string(p, pass, psz);
            have_pass = 1;
        } else {
            p = skip_value(p, 0);
        }
        if (p == NULL)
            return -1;
        p = skip_ws(p);
        if (*p == ',') {
            p = skip_ws(p + 1);
            continue;
        }
        if (*p == '}')
            break;
        return -1;
    }
    p = skip_ws(p + 1);
    if (*p != '\0')
        return -1;
    return have_user && have_pass ? 0 : -1;
}
