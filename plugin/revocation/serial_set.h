// serial_set.h: an immutable, exact set of certificate serial numbers with
// O(1) lookups, sized for CRLs of millions of entries.
//
// Contract:
//  - A serial is represented by its canonical key: the content octets of its
//    DER INTEGER in minimal two's complement, exactly what i2d_ASN1_INTEGER
//    writes minus the tag and length (e.g. 1 -> "\x01", 128 -> "\x00\x80",
//    0 -> "\x00", -1 -> "\xFF"). SerialKey() makes it from an ASN1_INTEGER
//    (a certificate's serial), CanonicalSerial() from raw content octets (a
//    CRL entry, which a sloppy CA may have padded). Both give the same bytes
//    for the same number, so lookups are a plain byte comparison.
//  - SerialSet is exact (no false positives), immutable once built, and its
//    const methods may be called from any number of threads without locks.
//    Contains() is O(1): one hash, a linear probe over 32-bit tags (a
//    miss usually reads one cache line), and on a tag match the serial's
//    bytes, stored at the same index in a parallel array of fixed 21-byte
//    records and prefetched together with the tag, so a hit costs about
//    one memory access too.
//  - Memory: one allocation holding the tags and the records at load at
//    most ~0.57: about 44 bytes per serial. Serials of up to 20 octets (the
//    RFC 5280 maximum) live there; longer ones (non-conforming CAs) go to a
//    small sorted side table. Destruction is one free(). Blocks of 4 MiB or
//    more are 2 MiB-aligned and madvise()d for transparent huge pages.
//    Duplicates added to the Builder are stored once.
//  - Serials are 0..kMaxSerialLength bytes; the Builder throws
//    std::length_error on a longer one or when the arena would exceed 4 GiB
//    (callers validate before adding: see Crl::Parse).
#ifndef CERTACL_PLUGIN_REVOCATION_SERIAL_SET_H_
#define CERTACL_PLUGIN_REVOCATION_SERIAL_SET_H_

#include <openssl/asn1.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace certacl::revocation {

// Canonical key of a certificate serial number (see above). "" for nullptr.
std::string SerialKey(const ASN1_INTEGER* serial);

// Canonical form of raw INTEGER content octets: strips redundant leading
// 0x00 (before a byte < 0x80) and 0xFF (before a byte >= 0x80) octets. The
// result is a suffix of the input. "" stays "" (not a valid INTEGER: DER
// walkers reject it before calling this).
std::string_view CanonicalSerial(std::string_view content_octets);

class SerialSet {
 public:
  static constexpr size_t kMaxSerialLength = 255;

  class Builder {
   public:
    Builder() = default;
    // Preallocates for `n` serials (and `total_bytes` serial bytes if known).
    void Reserve(size_t n, size_t total_bytes = 0);
    // Adds one canonical serial (not re-canonicalised). Throws
    // std::length_error if longer than kMaxSerialLength or if the arena
    // would exceed 4 GiB.
    void Add(std::string_view canonical_serial);
    // The set; the builder is left empty.
    SerialSet Build() &&;

   private:
    std::vector<uint8_t> arena_;  // [len][bytes]...
    size_t count_ = 0;
  };

  SerialSet() = default;  // empty
  SerialSet(SerialSet&& other) noexcept;  // leaves `other` empty
  SerialSet& operator=(SerialSet&& other) noexcept;
  SerialSet(const SerialSet&) = delete;
  SerialSet& operator=(const SerialSet&) = delete;

  bool Contains(std::string_view canonical_serial) const;
  size_t size() const { return size_; }
  // Heap bytes held (the tag and record block, and the side table).
  size_t MemoryUsage() const;

  // Calls f(std::string_view canonical_serial) once for every serial in
  // the set, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    for (uint64_t i = 0; i < capacity_; ++i) {
      if (tags()[i] != 0) f(std::string_view(records()[i].bytes, records()[i].len));
    }
    for (const std::string& l : long_) f(std::string_view(l));
  }

  // The hash Contains() uses (exposed for tests that need collisions): the
  // high 32 bits make the tag, the low 32 bits pick the home slot.
  static uint64_t Hash(std::string_view bytes);

 private:
  static constexpr size_t kInline = 20;  // serial bytes held in a record
  struct Record {
    uint8_t len;
    char bytes[kInline];
  };
  static_assert(sizeof(Record) == 21);
  struct FreeBlock {
    void operator()(void* p) const;
  };
  const uint32_t* tags() const { return static_cast<const uint32_t*>(block_.get()); }
  const Record* records() const { return reinterpret_cast<const Record*>(tags() + capacity_); }

  // block_: capacity_ tags (0 = empty slot), then capacity_ records.
  std::unique_ptr<void, FreeBlock> block_;
  size_t block_bytes_ = 0;
  uint64_t capacity_ = 0;
  size_t size_ = 0;
  std::vector<std::string> long_;  // sorted: serials longer than kInline
};

}  // namespace certacl::revocation

#endif  // CERTACL_PLUGIN_REVOCATION_SERIAL_SET_H_
