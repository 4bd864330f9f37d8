// A provider plugin (.so) driven only through the C ABI, as the engine drives it: dlopen,
// the entry function, and a host table of our own that collects every output. For the
// plugins' own tests (plugins/<id>/tests). Header-only: the plugin tests link no core.
#pragma once

#include <recsync/provider_abi.h>

#include <nlohmann/json.hpp>

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace testkit {

struct PluginOutput {
    struct Header {
        std::string name, value;
        uint32_t flags = 0;
    };
    bool has_json = false;
    std::string json_text, error;
    bool has_request = false;
    std::string method, path, body;
    std::vector<Header> headers;
    bool has_result = false;
    recsync_result_kind kind = RECSYNC_RESULT_OK;
    std::string external_id;
    int64_t retry_after_ms = -1;
    std::vector<std::vector<int64_t>> rate_limits;  // {limit, remaining, window_ms, reset_after_ms}
    recsync_status status = RECSYNC_ERR_INTERNAL;
    // ABI 1.6, parse_batch_response: each record's own verdict (set_item_*), by index.
    struct Item {
        bool has_result = false;
        recsync_result_kind kind = RECSYNC_RESULT_OK;
        std::string external_id, error, json_text;
        int64_t retry_after_ms = -1;
        int32_t status = 0;
    };
    std::vector<Item> items;

    nlohmann::json parsed() const { return nlohmann::json::parse(json_text); }
    const Header *header(std::string_view name) const {
        for (const auto &h : headers)
            if (h.name == name) return &h;
        return nullptr;
    }
};

struct PluginCall {
    recsync_action action = RECSYNC_ACTION_CREATE;
    std::string object, record_key, external_id, payload, token;
};

struct PluginResponse {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string cursor;
};

class ProviderHarness {
public:
    explicit ProviderHarness(const std::string &so_path) {
        handle_ = dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) throw std::runtime_error(dlerror());
        const auto entry = reinterpret_cast<recsync_entry_fn>(dlsym(handle_, RECSYNC_ENTRY_SYMBOL));
        if (!entry) throw std::runtime_error("no entry symbol in " + so_path);
        provider_ = entry(RECSYNC_ABI_VERSION, RECSYNC_ABI_VERSION);
        if (!provider_) throw std::runtime_error(so_path + " speaks no ABI this host does");
    }
    ~ProviderHarness() {
        for (void *i : instances_) provider_->destroy_instance(i);
        if (handle_) dlclose(handle_);
    }
    ProviderHarness(const ProviderHarness &) = delete;
    ProviderHarness &operator=(const ProviderHarness &) = delete;

    const recsync_provider &provider() const { return *provider_; }
    // Creates an instance (the last good one is used by the calls below); the output says why not.
    PluginOutput create(const nlohmann::json &config) {
        PluginOutput o;
        void *inst = nullptr;
        const std::string text = config.dump();
        o.status = provider_->create_instance(&host(), rs(text), out(o), &inst);
        if (o.status == RECSYNC_OK) instances_.push_back(instance_ = inst);
        return o;
    }
    PluginOutput describe() { return run([&](PluginOutput &o) { return provider_->describe(instance_, out(o)); }); }
    PluginOutput transform(recsync_direction d, std::string_view object, std::string_view record) {
        return run([&](PluginOutput &o) { return provider_->transform(instance_, d, rs(object), rs(record), out(o)); });
    }
    PluginOutput validate(std::string_view object, std::string_view payload) {
        return run([&](PluginOutput &o) { return provider_->validate(instance_, rs(object), rs(payload), out(o)); });
    }
    PluginOutput build(const PluginCall &c) {
        const recsync_call call = to_call(c);
        return run([&](PluginOutput &o) { return provider_->build_request(instance_, &call, out(o)); });
    }
    PluginOutput parse(const PluginCall &c, const PluginResponse &r) {
        const recsync_call call = to_call(c);
        Response resp(r);
        return run([&](PluginOutput &o) { return provider_->parse_response(instance_, &call, &resp.r, out(o)); });
    }
    // Batches (ABI 1.6): the calls as the host passes them, an array of pointers.
    PluginOutput build_batch(const std::vector<PluginCall> &cs) {
        std::vector<recsync_call> calls;
        for (const auto &c : cs) calls.push_back(to_call(c));
        std::vector<const recsync_call *> ptrs;
        for (const auto &c : calls) ptrs.push_back(&c);
        return run([&](PluginOutput &o) { return provider_->build_batch_request(instance_, ptrs.data(), ptrs.size(), out(o)); });
    }
    PluginOutput parse_batch(const std::vector<PluginCall> &cs, const PluginResponse &r) {
        std::vector<recsync_call> calls;
        for (const auto &c : cs) calls.push_back(to_call(c));
        std::vector<const recsync_call *> ptrs;
        for (const auto &c : calls) ptrs.push_back(&c);
        Response resp(r);
        return run([&](PluginOutput &o) {
            o.items.resize(cs.size());
            return provider_->parse_batch_response(instance_, ptrs.data(), ptrs.size(), &resp.r, out(o));
        });
    }
    PluginOutput build_poll(std::string_view object, std::string_view cursor, std::string_view token = "tok") {
        return run([&](PluginOutput &o) { return provider_->build_poll_request(instance_, rs(object), rs(cursor), rs(token), out(o)); });
    }
    PluginOutput parse_poll(std::string_view object, const PluginResponse &r) {
        Response resp(r);
        return run([&](PluginOutput &o) { return provider_->parse_poll_response(instance_, rs(object), &resp.r, out(o)); });
    }
    PluginOutput build_auth() { return run([&](PluginOutput &o) { return provider_->build_auth_request(instance_, out(o)); }); }
    PluginOutput parse_auth(const PluginResponse &r) {
        Response resp(r);
        return run([&](PluginOutput &o) { return provider_->parse_auth_response(instance_, &resp.r, out(o)); });
    }
    // Every line the plugin logged through the host ("<level> <text>").
    static std::vector<std::string> logs() {
        std::lock_guard l(log_mutex());
        return log_lines();
    }

private:
    struct Response {
        std::vector<recsync_header> headers;
        recsync_response r{};
        explicit Response(const PluginResponse &in) {
            for (const auto &[n, v] : in.headers) headers.push_back({rs(n), rs(v)});
            r = {sizeof(recsync_response), in.status, headers.data(), headers.size(), rs(in.body), rs(in.cursor)};
        }
    };
    static recsync_str rs(std::string_view s) { return {s.data(), s.size()}; }
    static std::string text(recsync_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); }
    static PluginOutput &of(recsync_output *o) { return *reinterpret_cast<PluginOutput *>(o); }
    static recsync_output *out(PluginOutput &o) { return reinterpret_cast<recsync_output *>(&o); }
    static recsync_call to_call(const PluginCall &c) {
        return {sizeof(recsync_call), c.action, rs(c.object), rs(c.record_key), rs(c.external_id), rs(c.payload), rs(c.token)};
    }
    template <typename Fn>
    PluginOutput run(Fn &&fn) {
        PluginOutput o;
        o.status = fn(o);
        return o;
    }
    static std::mutex &log_mutex() {
        static std::mutex m;
        return m;
    }
    static std::vector<std::string> &log_lines() {
        static std::vector<std::string> v;
        return v;
    }
    static const recsync_host_api &host() {
        static const recsync_host_api h = {
            sizeof(recsync_host_api),
            RECSYNC_ABI_VERSION,
            [](recsync_output *o, recsync_str j) {
                of(o).has_json = true;
                of(o).json_text = text(j);
            },
            [](recsync_output *o, recsync_str m) { of(o).error = text(m); },
            [](recsync_output *o, recsync_str method, recsync_str path, recsync_str body) {
                auto &r = of(o);
                r.has_request = true;
                r.method = text(method);
                r.path = text(path);
                r.body = text(body);
            },
            [](recsync_output *o, recsync_str name, recsync_str value, uint32_t flags) { of(o).headers.push_back({text(name), text(value), flags}); },
            [](recsync_output *o, recsync_result_kind kind, recsync_str id, int64_t after) {
                auto &r = of(o);
                r.has_result = true;
                r.kind = kind;
                r.external_id = text(id);
                r.retry_after_ms = after;
            },
            [](const recsync_host_api *, int level, recsync_str m) {
                std::lock_guard l(log_mutex());
                log_lines().push_back(std::to_string(level) + " " + text(m));
            },
            [](recsync_output *o, int64_t limit, int64_t remaining, int64_t window_ms, int64_t reset_after_ms) {
                of(o).rate_limits.push_back({limit, remaining, window_ms, reset_after_ms});
            },
            [](recsync_output *o, size_t i, recsync_result_kind kind, recsync_str id, int64_t after, int32_t status) {
                auto &items = of(o).items;
                if (i >= items.size()) return;
                items[i].has_result = true;
                items[i].kind = kind;
                items[i].external_id = text(id);
                items[i].retry_after_ms = after;
                items[i].status = status;
            },
            [](recsync_output *o, size_t i, recsync_str m) {
                if (i < of(o).items.size()) of(o).items[i].error = text(m);
            },
            [](recsync_output *o, size_t i, recsync_str j) {
                if (i < of(o).items.size()) of(o).items[i].json_text = text(j);
            },
        };
        return h;
    }

    void *handle_ = nullptr;
    const recsync_provider *provider_ = nullptr;
    std::vector<void *> instances_;
    void *instance_ = nullptr;
};

}  // namespace testkit
