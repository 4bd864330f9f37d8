/*
 * recsync provider ABI — the one C header a provider plugin needs.
 *
 * A provider is a shared library that knows one external system's HTTP API. It exports
 * exactly one symbol, the entry function RECSYNC_ENTRY_SYMBOL, and does no I/O of its own:
 * the host executes every HTTP call, so rate limiting, connection reuse, timeouts and
 * hot reload stay in the host.
 *
 * Versioning
 *   RECSYNC_ABI_VERSION = major << 16 | minor. The host calls the entry with the range of
 *   versions it speaks; the plugin returns a descriptor for one version in that range, or
 *   NULL. A plugin whose major differs from the host's is refused.
 *   Within a major, every struct here is APPEND-ONLY: members are never removed, reordered
 *   or retyped; new members go at the end and bump the minor. Each struct carries its
 *   `struct_size`, so a reader copies min(struct_size, sizeof(its own struct)) into a
 *   zeroed struct and treats members past the end as absent (NULL / 0).
 *
 * Memory
 *   Every recsync_str the plugin receives is BORROWED for the duration of the call only.
 *   Every output goes through a host callback in recsync_host_api that COPIES its
 *   arguments before returning. Nobody frees memory across the boundary.
 *
 * Errors
 *   Enums are 32-bit (each has a *_MAX_ENUM member) and gain values in later minors: a
 *   plugin must treat a value it does not know as unsupported, never assume a closed set.
 *
 *   Each function returns a recsync_status. On anything but RECSYNC_OK the plugin should
 *   call host->set_error(out, message) first; the host reports that message. An escaping
 *   C++ exception is undefined behaviour across a C ABI: the C++ SDK catches everything.
 *
 * Threading
 *   The descriptor and the entry are called on the host's control thread.
 *   create_instance / destroy_instance: control thread, never concurrently with other
 *   calls on the same instance.
 *   Every other function may be called from any host thread, concurrently on the same
 *   instance: an instance must be immutable after creation (or synchronise itself).
 */
#ifndef RECSYNC_PROVIDER_ABI_H
#define RECSYNC_PROVIDER_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RECSYNC_ABI_MAJOR 1
#define RECSYNC_ABI_MINOR 6 /* 1.1: recsync_host_api.set_rate_limit; 1.2: RECSYNC_ACTION_FIND;
                              1.3: RECSYNC_ERR_UNAUTHENTICATED, READ answers with the record;
                              1.4: recsync_response.cursor, polling's "more";
                              1.5: parse_auth_response's instance_url, expires_in optional;
                              1.6: batches (build/parse_batch_*, set_item_*) */
#define RECSYNC_ABI_MAKE(major, minor) ((uint32_t)(((uint32_t)(major) << 16) | (uint32_t)(minor)))
#define RECSYNC_ABI_VERSION RECSYNC_ABI_MAKE(RECSYNC_ABI_MAJOR, RECSYNC_ABI_MINOR)
#define RECSYNC_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define RECSYNC_ABI_MINOR_OF(v) ((uint32_t)(v)&0xFFFFu)

/* The one exported symbol. */
#define RECSYNC_ENTRY_SYMBOL "recsync_provider_entry"

/* A borrowed, not necessarily NUL-terminated byte string. {NULL,0} is the empty string.
 * Names, ids, JSON and messages are UTF-8; HTTP bodies and header values are whatever the
 * peer sent (a plugin must not assume they are valid UTF-8). Outputs a plugin sets with
 * set_json / set_error must be valid UTF-8. */
typedef struct recsync_str {
    const char *ptr;
    size_t len;
} recsync_str;

typedef enum recsync_status {
    RECSYNC_OK = 0,
    RECSYNC_ERR_INVALID_INPUT = 1, /* the input cannot be handled: permanent, do not retry */
    RECSYNC_ERR_UNSUPPORTED = 2,   /* this object/action/direction is not supported */
    RECSYNC_ERR_CONFIG = 3,        /* the instance configuration is wrong */
    RECSYNC_ERR_INTERNAL = 4,      /* a bug or an unexpected condition inside the plugin */
    /* 1.3, parse_webhook only: the delivery's signature is missing, wrong or stale (the host
     * answers 401 and stores nothing). A 1.2 host treats it as an unknown status. */
    RECSYNC_ERR_UNAUTHENTICATED = 5,
    RECSYNC_STATUS_MAX_ENUM = 0x7FFFFFFF /* keeps the enum 32-bit: later versions add values */
} recsync_status;

typedef enum recsync_action {
    RECSYNC_ACTION_CREATE = 1,
    RECSYNC_ACTION_UPDATE = 2,
    RECSYNC_ACTION_UPSERT = 3,
    RECSYNC_ACTION_DELETE = 4,
    /* Read the record by its external_id. 1.3: on OK, parse_response also reports the record
     * (see recsync_provider.parse_response): the host plans it as an event from the
     * connection (hydrating a webhook that only named the record). */
    RECSYNC_ACTION_READ = 5,
    /* 1.2: look up the record that an earlier attempt of this create may have made (its
     * answer was lost: a timeout, a 5xx, a crash). Sent only to plugins of ABI >= 1.2,
     * only for objects whose describe says "create_retry": "find". The call carries the
     * create's record_key and payload. parse_response: OK with the record's external_id
     * if found, OK with an empty external_id if there is none (the host then sends the
     * create), RETRY/FAIL as usual (FAIL if several records match: the host cannot tell
     * which one is ours). */
    RECSYNC_ACTION_FIND = 6,
    RECSYNC_ACTION_MAX_ENUM = 0x7FFFFFFF
} recsync_action;

typedef enum recsync_direction {
    RECSYNC_OUTBOUND = 1, /* internal record -> external payload */
    RECSYNC_INBOUND = 2,  /* external payload -> internal record */
    RECSYNC_DIRECTION_MAX_ENUM = 0x7FFFFFFF
} recsync_direction;

/* What parse_response concluded about one HTTP exchange. */
typedef enum recsync_result_kind {
    RECSYNC_RESULT_OK = 0,    /* done; external_id set for creates */
    RECSYNC_RESULT_RETRY = 1, /* transient: try again (after retry_after_ms if > 0) */
    RECSYNC_RESULT_FAIL = 2,  /* permanent: dead-letter with the error message */
    RECSYNC_RESULT_MAX_ENUM = 0x7FFFFFFF
} recsync_result_kind;

/* Capability flags (recsync_provider.capabilities). */
#define RECSYNC_CAP_NATIVE_UPSERT (1ull << 0) /* upsert by our key in one call (informational: the host
                                                 reads describe()'s create_retry, not this flag) */
#define RECSYNC_CAP_WEBHOOKS (1ull << 1)      /* parse_webhook is implemented */
#define RECSYNC_CAP_POLLING (1ull << 2)       /* build/parse_poll_* are implemented */
#define RECSYNC_CAP_AUTH_REFRESH (1ull << 3)  /* build/parse_auth_* are implemented */
#define RECSYNC_CAP_BATCH (1ull << 4)         /* 1.6: build/parse_batch_* are implemented */

/* Header flag for recsync_host_api.add_header: the value is a secret; the host never logs
 * or stores it (dead letters keep the name with a redacted value). */
#define RECSYNC_HEADER_SECRET 1u

/* Opaque host object that collects one call's outputs. Valid only during that call. */
typedef struct recsync_output recsync_output;

/* One HTTP header, borrowed. */
typedef struct recsync_header {
    recsync_str name;
    recsync_str value;
} recsync_header;

/*
 * Host services handed to create_instance. OWNERSHIP: host; valid until destroy_instance
 * returns. THREAD: every member may be called from any thread. Append-only.
 * Every output function COPIES its arguments; calling one twice replaces the earlier value
 * (add_header and set_rate_limit append). A host may leave a member it does not implement
 * NULL: check before calling members newer than RECSYNC_HOST_API_MIN_SIZE.
 */
typedef struct recsync_host_api {
    uint32_t struct_size;
    uint32_t abi_version;
    /* The JSON result of describe / transform / parse_webhook / parse_poll_response /
     * parse_auth_response. Must be valid JSON text. */
    void (*set_json)(recsync_output *out, recsync_str json);
    /* A human-readable reason for a non-OK status or a RETRY/FAIL result. */
    void (*set_error)(recsync_output *out, recsync_str message);
    /* build_*: the request line. `path` is appended to the connection's base URL (the
     * plugin never chooses the host); it includes the query string. `body` may be empty. */
    void (*set_request)(recsync_output *out, recsync_str method, recsync_str path,
                        recsync_str body);
    /* build_*: one request header; flags: RECSYNC_HEADER_SECRET or 0. */
    void (*add_header)(recsync_output *out, recsync_str name, recsync_str value,
                       uint32_t flags);
    /* parse_response: the verdict. external_id: the record's id in the external system
     * (required for an OK create/upsert; may be empty otherwise). retry_after_ms: for
     * RETRY, the earliest retry the server asked for (0: host's backoff decides). */
    void (*set_result)(recsync_output *out, recsync_result_kind kind, recsync_str external_id,
                       int64_t retry_after_ms);
    /* Log through the host (levels 0 trace .. 5 critical). Never pass secrets. `host` is
     * the table the plugin was given or a copy of it: hosts must not rely on its address. */
    void (*log)(const struct recsync_host_api *host, int level, recsync_str message);

    /* ---- ABI 1.1 ---- a plugin checks struct_size (and that the member is not NULL)
     * before calling anything below: a 1.0 host does not have it. */

    /* parse_response only: what the server said about its own rate limit in this response
     * (e.g. HubSpot's X-HubSpot-RateLimit-Max / -Remaining / -Interval-Milliseconds).
     * `remaining` more requests are allowed within the current window; the window is
     * `window_ms` long (0: unknown) and/or resets `reset_after_ms` from now (0: unknown);
     * at least one of the two must be > 0, or the report is ignored. `limit` is the window's
     * size (0: unknown). The host never sends more than `remaining` before the window
     * resets and pauses the connection while nothing remains. A window with a limit and a
     * length but no reset time is counted: each of the host's calls holds a place until one
     * window after its answer, and the rest of the server's count until one window after the
     * report. One with no limit and only a length is taken to reset a full window after
     * the server last said it was used up. Call it once per window the server reports
     * (e.g. per second and per ten seconds): unlike the other outputs, each call adds a
     * report; every window must allow a call. Negative values are treated as 0.
     * THREAD: the parse_response call's thread. */
    void (*set_rate_limit)(recsync_output *out, int64_t limit, int64_t remaining, int64_t window_ms,
                           int64_t reset_after_ms);

    /* ---- ABI 1.6 ---- parse_batch_response only (check struct_size first, as above).
     * The verdict on the batch's record `index` (0-based, in the order of the calls the
     * batch was built from), as set_result gives one for a single call. `status`: the HTTP
     * status of that record's own answer inside the batch (e.g. 404 for an id the batch
     * did not find, 409 for a conflict; 0: the batch's status). An index past the batch is
     * ignored. A record given no result of its own takes the batch's (set_result); given
     * neither, the host retries it. */
    void (*set_item_result)(recsync_output *out, size_t index, recsync_result_kind kind,
                            recsync_str external_id, int64_t retry_after_ms, int32_t status);
    /* That record's own reason for a RETRY/FAIL result (its dead letter says this). */
    void (*set_item_error)(recsync_output *out, size_t index, recsync_str message);
    /* That record's {"record": ..., "modified": ...}, as parse_response's set_json (1.3). */
    void (*set_item_json)(recsync_output *out, size_t index, recsync_str json);
} recsync_host_api;

/* One outbound call. OWNERSHIP: host, borrowed for the call. Append-only. */
typedef struct recsync_call {
    uint32_t struct_size;
    recsync_action action;
    recsync_str object;      /* the provider's object type, e.g. "contacts" */
    recsync_str record_key;  /* our key for the record (stable, unique per object) */
    recsync_str external_id; /* their id from the host's id map; empty if unknown */
    recsync_str payload;     /* JSON from transform (empty for DELETE/READ) */
    recsync_str access_token; /* the connection's current credential; empty if none */
} recsync_call;

/* One HTTP response. OWNERSHIP: host, borrowed for the call. Append-only. */
typedef struct recsync_response {
    uint32_t struct_size;
    int32_t status; /* HTTP status code */
    const recsync_header *headers;
    size_t header_count;
    recsync_str body;
    /* ---- ABI 1.4 ---- parse_poll_response: the cursor the request was built from (empty:
     * the start), so the plugin can tell the next one without keeping state. Empty for
     * every other call. */
    recsync_str cursor;
} recsync_response;

/* One inbound webhook delivery. OWNERSHIP: host, borrowed for the call. Append-only. */
typedef struct recsync_webhook {
    uint32_t struct_size;
    recsync_str method;
    recsync_str path;
    const recsync_header *headers;
    size_t header_count;
    recsync_str body;
} recsync_webhook;

/*
 * The provider descriptor returned by the entry. OWNERSHIP: plugin, static, never freed;
 * the host copies it. THREAD: read once on the control thread. Append-only.
 * Required members: everything up to and including parse_response. Optional members
 * (NULL when absent) must agree with the capability flags.
 */
typedef struct recsync_provider {
    uint32_t struct_size; /* sizeof(recsync_provider) as the plugin was compiled */
    uint32_t abi_version; /* RECSYNC_ABI_MAKE(major, minor) the plugin implements */
    const char *id;       /* provider id, [a-z0-9_-]+; must equal the file name stem */
    const char *version;  /* the plugin's own version, e.g. "1.2.0" */
    uint64_t capabilities;

    /* Create an instance from the connection's config (JSON object: base_url, settings).
     * THREAD: control. On success store the instance in *instance and return OK; on
     * failure set_error(out, ...) and return non-OK (*instance is ignored). */
    recsync_status (*create_instance)(const recsync_host_api *host, recsync_str config_json,
                                      recsync_output *out, void **instance);
    /* THREAD: control, after every other call on the instance has returned. */
    void (*destroy_instance)(void *instance);

    /* JSON: {"objects": {"<name>": {"schema": <JSON Schema of the outbound payload>,
     *        "key_property": "...", "create_retry": "upsert" | "find",
     *        "batch": {"create": N, "update": N, "upsert": N, "delete": N, "read": N}}},
     *        "rate_limit": {"per_second": N, "burst": N}}
     * The host reads "objects" (names, "schema", "create_retry", "batch") and
     * "rate_limit"; "key_property" is informational and may be left out.
     * batch (1.6, RECSYNC_CAP_BATCH): per action, the most records one call of
     * build_batch_request may carry (an action left out, or 1, is never batched).
     * create_retry (optional): how the host re-sends a create whose earlier attempt may
     * have succeeded without a duplicate: "upsert" sends it as RECSYNC_ACTION_UPSERT (the
     * object has a unique key the payload carries); "find" (ABI >= 1.2) first sends
     * RECSYNC_ACTION_FIND and, if a record is found, updates it. Absent: the create is
     * sent again as it is, and only the provider itself can refuse a duplicate.
     * sample (optional, append-only JSON: no ABI minor): a record in transform(OUTBOUND)'s
     * input form, e.g. {"email": "ada@example.com"}. The host never syncs it: the
     * conformance kit (`recsync plugin check`, and the engine's check at every load)
     * builds every action the object supports from it. Without one the kit guesses a
     * record from "schema" (its required properties), or skips the checks that need a
     * payload and says so. */
    recsync_status (*describe)(void *instance, recsync_output *out);
    /* JSON in (record) -> JSON out (payload) via set_json. */
    recsync_status (*transform)(void *instance, recsync_direction direction, recsync_str object,
                                recsync_str record_json, recsync_output *out);
    /* Check an outbound payload beyond its JSON Schema. OK, or INVALID_INPUT + set_error. */
    recsync_status (*validate)(void *instance, recsync_str object, recsync_str payload_json,
                               recsync_output *out);
    /* call -> set_request + add_header. */
    recsync_status (*build_request)(void *instance, const recsync_call *call,
                                    recsync_output *out);
    /* call + response -> set_result (+ set_error for RETRY/FAIL).
     * 1.3, optional, on OK: set_json with {"record": <object>, "modified": "<text>"}, either
     * member optional. "record" (READ): the record as the external system holds it, in the
     * form transform(INBOUND) takes (HubSpot: {"id": "...", "properties": {...}}).
     * "modified" (any action that writes, and READ): the record's modification stamp there
     * after this call (HubSpot: updatedAt), compared as text. The host keeps the stamp of
     * its own last write; a change read back with that same stamp is recsync's own write
     * coming back (an echo) and is dropped. */
    recsync_status (*parse_response)(void *instance, const recsync_call *call,
                                     const recsync_response *response, recsync_output *out);

    /* ---- optional below (NULL when the capability is absent) ---- */

    /* RECSYNC_CAP_WEBHOOKS: one delivery to POST /v1/webhooks/{connection}. Verify its
     * signature first, in constant time: UNAUTHENTICATED (1.3; INVALID_INPUT before) if it is
     * missing, wrong or stale, INVALID_INPUT for a body that cannot be read. Then set_json
     * with {"events": [...]}, each event an object:
     *   "object"      the provider's object type (required)
     *   "event"       "created" | "updated" | "deleted" (required)
     *   "external_id" the record's id there (required, a non-empty string)
     *   "id"          an idempotency key for the change (optional; the host drops a repeat
     *                 within state.event_id_retention). Must name the change, not the
     *                 delivery: senders re-deliver with new delivery ids.
     *   "occurred_at" epoch milliseconds of the change there (optional; orders the record's
     *                 events: an older one than the last accepted is dropped)
     *   "data"        the record in transform(INBOUND)'s input form (optional for deletes)
     *   "modified"    the record's modification stamp there, as parse_response reports it
     *                 (optional; with it an echo of recsync's own write is dropped unread)
     *   "hydrate"     true: "data" is not the whole record (e.g. one changed property); the
     *                 host reads the record (RECSYNC_ACTION_READ) on the connection's lane
     *                 before planning it.
     * The host answers 2xx once the events are durable, so the sender may retry anything
     * else. `request->path` is the path and query as received; the URL the sender signed
     * (before a TLS proxy rewrote it) is the plugin's own setting. */
    recsync_status (*parse_webhook)(void *instance, const recsync_webhook *request,
                                    recsync_output *out);
    /* RECSYNC_CAP_POLLING: request for changes of `object` since `cursor` (empty: start;
     * else a cursor parse_poll_response returned, opaque to the host). The host runs it
     * under its own poll rate limit, on a schedule per (connection, object). */
    recsync_status (*build_poll_request)(void *instance, recsync_str object, recsync_str cursor,
                                         recsync_str access_token, recsync_output *out);
    /* set_json {"events": [...], "cursor": "...", "more": bool}: the page's changes, in the
     * form parse_webhook yields (above), and the cursor after them. The host stores that
     * cursor in the same commit as the events, so it never runs ahead of what is durable;
     * a crash re-reads the page, and events' ids make the repeat harmless. "more": true
     * asks for the next page now rather than at the next interval (a backlog, or a cursor
     * that needs another query to settle). response->cursor (1.4) is the request's cursor.
     * An answer that carries no page (an error status): return an error status with the
     * reason; the host backs off (honouring Retry-After) and asks again from the same
     * cursor. */
    recsync_status (*parse_poll_response)(void *instance, recsync_str object,
                                          const recsync_response *response, recsync_output *out);
    /* RECSYNC_CAP_AUTH_REFRESH: the token request (its path under the connection's
     * base_url); the host runs it and caches the token. */
    recsync_status (*build_auth_request)(void *instance, recsync_output *out);
    /* set_json {"access_token": "...", "expires_in": seconds}.
     * 1.5: "expires_in" may be left out (or 0): the token is used until a call is answered
     * 401, then fetched again (before 1.5 a missing lifetime meant an hour). "instance_url"
     * (optional): the base URL for the connection's record and poll calls made with this
     * token (Salesforce's answer names the org's instance); the token request itself keeps
     * going to the connection's base_url. http(s), a host and an optional path, no query,
     * fragment or credentials; never plain http when base_url is https. */
    recsync_status (*parse_auth_response)(void *instance, const recsync_response *response,
                                          recsync_output *out);

    /* ---- ABI 1.6 ---- RECSYNC_CAP_BATCH: several records in one HTTP call.
     * The host sends a batch of 2..N calls (N: describe's "batch" for the object and
     * action), all of one object and one action, at most one per record; a record alone
     * goes through build_request. `calls` is an array of `count` pointers (each struct
     * carries its own struct_size). set_request + add_header as build_request; the
     * access token is the same in every call. Refusing (non-OK) sends each record alone.
     * THREAD: any, like build_request. */
    recsync_status (*build_batch_request)(void *instance, const recsync_call *const *calls, size_t count,
                                          recsync_output *out);
    /* The answer to that request: a result per record (set_item_result, set_item_error,
     * set_item_json) and/or one for the whole batch (set_result + set_error: a 429, a 5xx,
     * an answer that refuses the batch as a whole), and set_rate_limit as parse_response.
     * Sync stays per record: each one's result decides its own retry or dead letter. A
     * whole-batch FAIL of a batch of more than one is not taken as each record's failure:
     * the host sends each record alone, so one bad record cannot fail the others. */
    recsync_status (*parse_batch_response)(void *instance, const recsync_call *const *calls, size_t count,
                                           const recsync_response *response, recsync_output *out);
} recsync_provider;

/* Smallest struct_size a plugin may rely on for the host table: through set_result.
 * A plugin handed a shorter table must fail create_instance. */
#define RECSYNC_HOST_API_MIN_SIZE (offsetof(recsync_host_api, set_result) + sizeof(void *))

/* Smallest struct_size the host accepts: through parse_response. */
#define RECSYNC_PROVIDER_MIN_SIZE \
    (offsetof(recsync_provider, parse_response) + sizeof(void *))

/* The entry: return a static descriptor for a version in [host_min_abi, host_max_abi],
 * or NULL if none fits. A plugin built for minor M of the host's major may answer with
 * min(M, host's max minor): it then uses only what that minor offers (it checks struct_size
 * before touching newer members). THREAD: control. Must not allocate or do I/O. */
typedef const recsync_provider *(*recsync_entry_fn)(uint32_t host_min_abi, uint32_t host_max_abi);

#ifdef __cplusplus
}
#endif

#endif /* RECSYNC_PROVIDER_ABI_H */
