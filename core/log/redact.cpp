#include "log/redact.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <vector>

namespace recsync::log {

namespace {

// Read on every log line, written at config loads: a shared lock keeps readers parallel.
std::shared_mutex secrets_mutex;
std::vector<std::string> secrets;  // longest first: a secret inside another goes with it

constexpr size_t kMinSecret = 4;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// First case-insensitive occurrence of `key` (lowercase) in `s` from `from`.
size_t find_ci(std::string_view s, std::string_view key, size_t from) {
    if (key.empty() || s.size() < key.size()) return std::string_view::npos;
    for (size_t i = from; i + key.size() <= s.size(); ++i) {
        if (lower(s[i]) != key[0]) continue;
        size_t k = 1;
        while (k < key.size() && lower(s[i + k]) == key[k]) ++k;
        if (k == key.size()) return i;
    }
    return std::string_view::npos;
}

bool is_quote(char c) { return c == '"' || c == '\'' || c == '\\'; }
bool is_space(char c) { return c == ' ' || c == '\t'; }

struct Span {
    size_t begin, end;
};

// The value of a `key: value`, `key=value`, `"key": "value"` (also JSON escaped inside
// JSON) whose key ends at `j`. to_line_end: an unquoted value runs to the end of the line
// (a header's, which may hold spaces: "Bearer x").
std::optional<Span> value_after(std::string_view s, size_t j, bool to_line_end) {
    while (j < s.size() && (is_quote(s[j]) || is_space(s[j]))) ++j;
    if (j >= s.size() || (s[j] != ':' && s[j] != '=')) return std::nullopt;
    ++j;
    while (j < s.size() && is_space(s[j])) ++j;
    const size_t open = j;
    while (j < s.size() && is_quote(s[j])) ++j;
    const bool quoted = j > open;
    if (s.substr(j).starts_with(kRedacted)) return std::nullopt;  // done already (its ']' would end an unquoted value)
    size_t e = j;
    if (quoted) {
        while (e < s.size() && !is_quote(s[e]) && s[e] != '\n' && s[e] != '\r') ++e;
    } else if (to_line_end) {
        while (e < s.size() && s[e] != '\n' && s[e] != '\r') ++e;
    } else {
        static constexpr std::string_view kEnds = " \t\r\n&,;}]\"'\\";
        while (e < s.size() && kEnds.find(s[e]) == std::string_view::npos) ++e;
    }
    if (e == j) return std::nullopt;
    return Span{j, e};
}

// Replaces each value of `key`; `s` changes in place.
void redact_key(std::string &s, std::string_view key, bool to_line_end) {
    for (size_t i = find_ci(s, key, 0); i != std::string::npos; i = find_ci(s, key, i)) {
        i += key.size();
        if (const auto v = value_after(s, i, to_line_end)) {
            s.replace(v->begin, v->end - v->begin, kRedacted);
            i = v->begin + kRedacted.size();
        }
    }
}

bool is_token_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

void redact_bearer(std::string &s) {
    for (size_t i = find_ci(s, "bearer", 0); i != std::string::npos; i = find_ci(s, "bearer", i)) {
        i += 6;
        size_t b = i;
        while (b < s.size() && is_space(s[b])) ++b;
        size_t e = b;
        while (e < s.size() && is_token_char(s[e])) ++e;
        if (b == i || e == b) continue;
        s.replace(b, e - b, kRedacted);
        i = b + kRedacted.size();
    }
}

// The password of a URL's user info: scheme://user:PASSWORD@host.
std::optional<Span> url_password(std::string_view s, size_t scheme_end) {
    const size_t from = scheme_end + 3;
    size_t end = from;
    while (end < s.size() && std::string_view("/?# \t\r\n\"'").find(s[end]) == std::string_view::npos) ++end;
    const size_t at = s.substr(from, end - from).rfind('@');
    if (at == std::string_view::npos) return std::nullopt;
    const size_t colon = s.substr(from, at).find(':');
    if (colon == std::string_view::npos || colon + 1 == at || s.substr(from + colon + 1, at - colon - 1) == kRedacted) return std::nullopt;
    return Span{from + colon + 1, from + at};
}

void redact_urls(std::string &s) {
    for (size_t i = s.find("://"); i != std::string::npos; i = s.find("://", i + 3))
        if (const auto v = url_password(s, i)) s.replace(v->begin, v->end - v->begin, kRedacted);
}

// Keys whose unquoted values stop at a separator; Authorization's runs to the line's end.
constexpr std::array<std::string_view, 4> kKeys = {"password", "access_token", "refresh_token", "client_secret"};

bool may_have_pattern(std::string_view text) {
    if (find_ci(text, "authorization", 0) != std::string_view::npos || find_ci(text, "bearer", 0) != std::string_view::npos) return true;
    for (const auto k : kKeys)
        if (find_ci(text, k, 0) != std::string_view::npos) return true;
    const size_t scheme = text.find("://");
    return scheme != std::string_view::npos && text.find('@', scheme) != std::string_view::npos;
}

void replace_all(std::string &s, std::string_view secret) {
    for (size_t i = s.find(secret); i != std::string::npos; i = s.find(secret, i + kRedacted.size())) s.replace(i, secret.size(), kRedacted);
}

}  // namespace

void register_secret(std::string value) {
    if (value.size() < kMinSecret) return;
    std::unique_lock lock(secrets_mutex);
    if (std::find(secrets.begin(), secrets.end(), value) != secrets.end()) return;
    secrets.insert(std::upper_bound(secrets.begin(), secrets.end(), value, [](const std::string &a, const std::string &b) { return a.size() > b.size(); }), std::move(value));
}

void register_dsn(std::string_view dsn) {
    register_secret(std::string(dsn));
    if (const size_t k = find_ci(dsn, "password", 0); k != std::string_view::npos)
        if (const auto v = value_after(dsn, k + 8, false)) register_secret(std::string(dsn.substr(v->begin, v->end - v->begin)));
    if (const size_t scheme = dsn.find("://"); scheme != std::string_view::npos)
        if (const auto v = url_password(dsn, scheme)) register_secret(std::string(dsn.substr(v->begin, v->end - v->begin)));
}

void clear_secrets() {
    std::unique_lock lock(secrets_mutex);
    secrets.clear();
}

bool redact(std::string_view text, std::string &out) {
    std::shared_lock lock(secrets_mutex);
    bool found = false;
    for (const auto &s : secrets) found = found || text.find(s) != std::string_view::npos;
    if (!found && !may_have_pattern(text)) return false;
    std::string s(text);
    for (const auto &secret : secrets) replace_all(s, secret);
    lock.unlock();
    redact_key(s, "authorization", true);
    redact_bearer(s);
    for (const auto k : kKeys) redact_key(s, k, false);
    redact_urls(s);
    if (s == text) return false;  // a keyword, but no value (or one already redacted)
    out = std::move(s);
    return true;
}

std::string redacted(std::string_view text) {
    std::string out;
    return redact(text, out) ? out : std::string(text);
}

}  // namespace recsync::log
