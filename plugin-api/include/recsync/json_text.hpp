// JSON text written straight into a std::string the caller reuses: the host's mapping
// output and the SDK's transform output, the two hot paths that turn a record into text.
//
// Why not nlohmann's dump(): it runs every byte of every string through a UTF-8 decoder
// (about 20 instructions per byte, the largest single cost of planning an event in
// bench/README.md "rules") and returns a new string each time.
// Why hand-written: the Debian JSON libraries at hand either keep their writer private
// (simdjson: its mini_formatter "is not part of our public API and subject to change") or
// would add a dependency to every plugin build for what is, here, one escaping loop
// (RapidJSON's Writer, which also writes to its own buffer type and escapes differently
// from nlohmann). Numbers go through std::to_chars; UTF-8 is checked by the caller with
// simdjson::validate_utf8 where its input could be invalid (this writer copies bytes).
//
// The text is byte for byte what dump() gives for strings, keys, integers, booleans, null
// and structure (objects in the document's key order, which for nlohmann is sorted).
// Floating-point numbers are the shortest text that reads back as the same double
// (std::to_chars), with ".0" added when that text would read back as an integer, so a
// double stays a double; NaN and infinities are written as null, as dump() writes them.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace recsync::json_text {

namespace detail {

// For each byte: 0 if it is copied as is, else the character after the backslash ('u' for
// \u00xx). nlohmann escapes exactly these (with ensure_ascii off): control characters, '"'
// and '\\'; DEL and everything from 0x80 up are copied.
inline constexpr std::array<char, 256> kEscape = [] {
    std::array<char, 256> t{};
    for (int c = 0; c < 0x20; ++c) t[c] = 'u';
    t['\b'] = 'b';
    t['\t'] = 't';
    t['\n'] = 'n';
    t['\f'] = 'f';
    t['\r'] = 'r';
    t['"'] = '"';
    t['\\'] = '\\';
    return t;
}();

// Whether any of 8 bytes needs escaping (a control character, '"' or '\\'), eight at a
// time: the usual "has a zero byte" / "has a byte below n" word tricks, exact as a yes/no.
inline bool any_to_escape(uint64_t w) {
    constexpr uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    const uint64_t below_space = (w - ones * 0x20) & ~w;
    const uint64_t zero_quote = (quote - ones) & ~quote;
    const uint64_t zero_backslash = (backslash - ones) & ~backslash;
    return ((below_space | zero_quote | zero_backslash) & highs) != 0;
}

// Whether `s` has any byte to escape: 8 bytes at a time, the last 8 overlapping.
inline bool needs_escaping(std::string_view s) {
    const char *p = s.data();
    const size_t n = s.size();
    if (n < 8) {
        for (size_t i = 0; i < n; ++i)
            if (kEscape[static_cast<unsigned char>(p[i])]) return true;
        return false;
    }
    uint64_t w;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        std::memcpy(&w, p + i, 8);
        if (any_to_escape(w)) return true;
    }
    std::memcpy(&w, p + n - 8, 8);
    return any_to_escape(w);
}

}  // namespace detail

// Appends JSON to a std::string through a raw pointer: the string is grown up front (and
// doubled when full) and cut to the written length by finish() (or the destructor), so each
// piece costs a bounds check and a copy instead of std::string's append machinery (that
// machinery was half the cost of writing a record).
class Writer {
public:
    // Writes after what `out` holds. Nothing written may point into `out` itself.
    explicit Writer(std::string &out) : out_(out), pos_(out.size()) {
        // The capacity a reused string already has, but never zero-filling megabytes
        // because one record was once that large.
        out_.resize(std::clamp(out_.capacity(), pos_ + 256, pos_ + 4096));
    }
    ~Writer() { finish(); }
    Writer(const Writer &) = delete;
    Writer &operator=(const Writer &) = delete;

    // Cuts the string to what was written; the writer must not be used after.
    void finish() {
        if (pos_ != out_.size()) out_.resize(pos_);
    }

    void raw(std::string_view s) {
        std::memcpy(room(s.size()), s.data(), s.size());
        pos_ += s.size();
    }
    void raw(char c) {
        *room(1) = c;
        ++pos_;
    }

    // `s` as a JSON string, quotes included.
    void string(std::string_view s) {
        char *d = room(s.size() + 2);  // enough unless something needs escaping
        *d++ = '"';
        if (!detail::needs_escaping(s)) {  // nearly every key and value
            std::memcpy(d, s.data(), s.size());
            d[s.size()] = '"';
            pos_ += s.size() + 2;
            return;
        }
        pos_ = static_cast<size_t>(d - out_.data());
        escaped(s);
    }

    template <typename Int>
    void integer(Int v) {
        char *d = room(24);
        pos_ += static_cast<size_t>(std::to_chars(d, d + 24, v).ptr - d);
    }

    void number(double v) {
        if (!std::isfinite(v)) {
            raw("null");
            non_finite_ = true;
            return;
        }
        char *d = room(40);
        const size_t n = static_cast<size_t>(std::to_chars(d, d + 32, v).ptr - d);
        pos_ += n;
        if (std::string_view(d, n).find_first_of(".e") == std::string_view::npos) raw(".0");
    }

    // Whether a NaN or an infinity was written (as null): the text then does not read
    // back as the document it was written from.
    bool wrote_non_finite() const { return non_finite_; }

    // Any document, compact, as dump() would write it (see above for floating-point numbers).
    void value(const nlohmann::json &v) {
        using T = nlohmann::json::value_t;
        switch (v.type()) {
            case T::object: {
                raw('{');
                bool first = true;
                for (const auto &[key, member] : v.get_ref<const nlohmann::json::object_t &>()) {
                    if (!first) raw(',');
                    first = false;
                    string(key);
                    raw(':');
                    value(member);
                }
                raw('}');
                return;
            }
            case T::array: {
                raw('[');
                bool first = true;
                for (const auto &e : v.get_ref<const nlohmann::json::array_t &>()) {
                    if (!first) raw(',');
                    first = false;
                    value(e);
                }
                raw(']');
                return;
            }
            case T::string: string(v.get_ref<const std::string &>()); return;
            case T::number_integer: integer(v.get<int64_t>()); return;
            case T::number_unsigned: integer(v.get<uint64_t>()); return;
            case T::number_float: number(v.get<double>()); return;
            case T::boolean: raw(v.get<bool>() ? std::string_view("true") : std::string_view("false")); return;
            case T::null: raw("null"); return;
            case T::discarded:  // neither comes from parsing text; written as dump() writes them
            case T::binary: raw(v.dump()); return;
        }
    }

private:
    // A pointer to at least `n` writable bytes at the write position.
    char *room(size_t n) {
        if (out_.size() - pos_ < n) [[unlikely]]
            grow(n);
        return out_.data() + pos_;
    }
    [[gnu::noinline]] void grow(size_t n) { out_.resize(std::max(out_.size() * 2, pos_ + n)); }

    // The body and closing quote of a string that has something to escape.
    [[gnu::noinline]] void escaped(std::string_view s) {
        static constexpr char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < s.size(); ++i) {
            // Room for this byte escaped (6 at most), the rest unescaped and the quote.
            char *d = room(6 + s.size() - i);
            const unsigned char c = static_cast<unsigned char>(s[i]);
            const char e = detail::kEscape[c];
            if (!e) {
                *d = static_cast<char>(c);
                ++pos_;
                continue;
            }
            d[0] = '\\';
            d[1] = e;
            if (e != 'u') {
                pos_ += 2;
                continue;
            }
            d[2] = '0';
            d[3] = '0';
            d[4] = hex[c >> 4];
            d[5] = hex[c & 0xF];
            pos_ += 6;
        }
        raw('"');
    }

    std::string &out_;
    size_t pos_;
    bool non_finite_ = false;
};

// `s` as a JSON string, quotes included, appended to `out`.
inline void append_string(std::string &out, std::string_view s) { Writer(out).string(s); }

// Any document appended to `out`, compact, as dump() would write it.
inline void append(std::string &out, const nlohmann::json &v) { Writer(out).value(v); }

}  // namespace recsync::json_text
