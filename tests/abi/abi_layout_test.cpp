// ABI pinning test, C++ side: the table in abi_pins.inc (read it first, it says how to
// extend the ABI) checked through the header as C++ sees it. Beyond the C checker it proves
// each member's exact type, and that the table has one row for every member, in
// declaration order, so a member added anywhere but through a new row fails here.
#include <recsync/provider_abi.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace {

#if defined(__x86_64__) && defined(__LP64__) && defined(__linux__)
constexpr bool kPinnedTarget = true;
#else
constexpr bool kPinnedTarget = false;
#endif

// Number of members of aggregate T: the most initializers T{...} accepts, each of which
// converts to any member type (so a struct member takes one, never brace elision).
struct AnyMember {
    template <typename T>
    operator T() const;  // never defined: only used in unevaluated requires-expressions
};
template <typename T, typename... Args>
constexpr std::size_t member_count() {
    if constexpr (requires { T{Args{}..., AnyMember{}}; })
        return member_count<T, Args..., AnyMember>();
    else
        return sizeof...(Args);
}

struct MemberRow {
    std::string type, member;
    std::size_t pinned_offset, pinned_size, offset, size, align;
    bool same_type;
};

struct StructRow {
    std::string type;
    std::size_t pinned_size, pinned_align, size, align, members;
};

#define PIN_ABI(major, minor)
#define PIN_STRUCT(type, size, align)
#define PIN(type, member, offset, size, ctype)                                                                 \
    MemberRow{#type, #member, offset, size, offsetof(type, member), sizeof(type::member), alignof(decltype(type::member)), \
              std::is_same_v<decltype(type::member), ctype>},
#define PIN_ENUM(type)
#define PIN_CONST(name, value)
#define PIN_STRING(name, value)
#define PIN_TYPEDEF(type, size, ctype)
const std::vector<MemberRow> kMembers = {
#include "abi_pins.inc"
};
#undef PIN_STRUCT
#undef PIN
#define PIN_STRUCT(type, size, align) StructRow{#type, size, align, sizeof(type), alignof(type), member_count<type>()},
#define PIN(type, member, offset, size, ctype)
const std::vector<StructRow> kStructs = {
#include "abi_pins.inc"
};

class AbiLayout : public ::testing::Test {
protected:
    void SetUp() override {
        if (!kPinnedTarget) GTEST_SKIP() << "the pinned ABI table is for x86_64 Linux (LP64)";
    }
};

TEST_F(AbiLayout, VersionIsPinned) {
#undef PIN_ABI
#define PIN_ABI(major, minor)                                                    \
    EXPECT_EQ(RECSYNC_ABI_MAJOR, major) << "an ABI major change breaks every built plugin"; \
    EXPECT_EQ(RECSYNC_ABI_MINOR, minor) << "a new minor needs new rows in abi_pins.inc";      \
    EXPECT_EQ(RECSYNC_ABI_VERSION, (uint32_t{major} << 16) | uint32_t{minor});
#undef PIN_STRUCT
#define PIN_STRUCT(type, size, align)
#include "abi_pins.inc"
    EXPECT_EQ(RECSYNC_ABI_MAJOR_OF(RECSYNC_ABI_VERSION), static_cast<uint32_t>(RECSYNC_ABI_MAJOR));
    EXPECT_EQ(RECSYNC_ABI_MINOR_OF(RECSYNC_ABI_VERSION), static_cast<uint32_t>(RECSYNC_ABI_MINOR));
    EXPECT_EQ(RECSYNC_ABI_MAKE(3, 7), 0x30007u);
}
#undef PIN_ABI
#define PIN_ABI(major, minor)

TEST_F(AbiLayout, StructSizesAndAlignmentsArePinned) {
    for (const auto &s : kStructs) {
        EXPECT_EQ(s.size, s.pinned_size) << "sizeof(" << s.type << ")";
        EXPECT_EQ(s.align, s.pinned_align) << "alignof(" << s.type << ")";
    }
}

TEST_F(AbiLayout, MemberOffsetsSizesAndTypesArePinned) {
    for (const auto &m : kMembers) {
        const std::string name = m.type + "." + m.member;
        EXPECT_EQ(m.offset, m.pinned_offset) << "offsetof " << name << ": moved";
        EXPECT_EQ(m.size, m.pinned_size) << "sizeof " << name << ": retyped";
        EXPECT_TRUE(m.same_type) << name << " no longer has the pinned type";
    }
}

// One row per member, in declaration order: each pinned member starts where the previous
// one ends (plus alignment padding), and the table has as many rows as the struct members.
TEST_F(AbiLayout, TableCoversEveryMemberInOrder) {
    for (const auto &s : kStructs) {
        std::size_t rows = 0, end = 0;
        for (const auto &m : kMembers) {
            if (m.type != s.type) continue;
            ++rows;
            const std::size_t expected = (end + m.align - 1) / m.align * m.align;
            EXPECT_EQ(m.offset, expected) << s.type << "." << m.member << " is not the member after the previous row";
            end = m.offset + m.size;
        }
        EXPECT_EQ(rows, s.members) << s.type << " has " << s.members << " members but " << rows << " rows in abi_pins.inc";
        EXPECT_EQ((end + s.align - 1) / s.align * s.align, s.size) << s.type << " has bytes after its last pinned member";
    }
}

TEST_F(AbiLayout, EnumsAre32BitAndConstantsArePinned) {
#undef PIN_ENUM
#undef PIN_CONST
#undef PIN_STRING
#undef PIN_TYPEDEF
#define PIN_ENUM(type)                            \
    EXPECT_EQ(sizeof(type), 4u) << #type;         \
    EXPECT_EQ(alignof(type), 4u) << #type;        \
    EXPECT_TRUE(std::is_enum_v<type>) << #type;
#define PIN_CONST(name, value) EXPECT_EQ(static_cast<unsigned long long>(name), static_cast<unsigned long long>(value)) << #name;
#define PIN_STRING(name, value) EXPECT_STREQ(name, value) << #name;
#define PIN_TYPEDEF(type, size, ctype)         \
    EXPECT_EQ(sizeof(type), std::size_t{size}) << #type; \
    EXPECT_TRUE((std::is_same_v<type, ctype>)) << #type << " no longer has the pinned type";
#include "abi_pins.inc"
}

TEST_F(AbiLayout, MaxEnumsKeepEnumsAt32Bits) {
    EXPECT_EQ(static_cast<long long>(RECSYNC_STATUS_MAX_ENUM), 0x7FFFFFFFLL);
    EXPECT_EQ(static_cast<long long>(RECSYNC_ACTION_MAX_ENUM), 0x7FFFFFFFLL);
    EXPECT_EQ(static_cast<long long>(RECSYNC_DIRECTION_MAX_ENUM), 0x7FFFFFFFLL);
    EXPECT_EQ(static_cast<long long>(RECSYNC_RESULT_MAX_ENUM), 0x7FFFFFFFLL);
}

TEST_F(AbiLayout, ProviderMinSizeEndsAtParseResponse) {
    EXPECT_EQ(RECSYNC_PROVIDER_MIN_SIZE, offsetof(recsync_provider, parse_response) + sizeof(void *));
    EXPECT_LE(RECSYNC_PROVIDER_MIN_SIZE, sizeof(recsync_provider));
}

// The structs cross the boundary by memcpy (the append-only rule copies min(struct_size,
// sizeof)); that is only valid for trivially copyable standard-layout types.
TEST_F(AbiLayout, StructsAreCStructs) {
    EXPECT_TRUE((std::is_standard_layout_v<recsync_str> && std::is_trivially_copyable_v<recsync_str>));
    EXPECT_TRUE((std::is_standard_layout_v<recsync_header> && std::is_trivially_copyable_v<recsync_header>));
    EXPECT_TRUE((std::is_standard_layout_v<recsync_host_api> && std::is_trivially_copyable_v<recsync_host_api>));
    EXPECT_TRUE((std::is_standard_layout_v<recsync_call> && std::is_trivially_copyable_v<recsync_call>));
    EXPECT_TRUE((std::is_standard_layout_v<recsync_response> && std::is_trivially_copyable_v<recsync_response>));
    EXPECT_TRUE((std::is_standard_layout_v<recsync_webhook> && std::is_trivially_copyable_v<recsync_webhook>));
    EXPECT_TRUE((std::is_standard_layout_v<recsync_provider> && std::is_trivially_copyable_v<recsync_provider>));
}

// The checker itself must notice a hole: a row list that skips a member cannot pass.
TEST_F(AbiLayout, MemberCountSeesEveryMember) {
    struct Two {
        uint32_t a;
        recsync_str b;
    };
    struct Three {
        uint32_t a;
        uint32_t hidden;  // would hide in Two's padding
        recsync_str b;
    };
    static_assert(member_count<Two>() == 2);
    static_assert(member_count<Three>() == 3);
}

}  // namespace
