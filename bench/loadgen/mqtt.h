// mqtt.h: the minimal MQTT 3.1.1 / 5 codec of certacl-loadgen. Encoders
// append to a byte buffer (no allocation once it has grown); the decoder
// splits complete packets out of a receive buffer. MQTT 5 packets are
// written with empty property blocks; incoming property blocks are skipped
// by their length.
#ifndef CERTACL_BENCH_LOADGEN_MQTT_H_
#define CERTACL_BENCH_LOADGEN_MQTT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace certacl::loadgen::mqtt {

enum : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kSubscribe = 8,
  kSuback = 9,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

inline void PutByte(std::string& b, unsigned v) { b.push_back(static_cast<char>(static_cast<uint8_t>(v))); }
inline void PutU16(std::string& b, unsigned v) {
  PutByte(b, (v >> 8) & 0xFF);
  PutByte(b, v & 0xFF);
}
inline void PutVarint(std::string& b, size_t v) {
  do {
    unsigned digit = static_cast<unsigned>(v % 128);
    v /= 128;
    if (v > 0) digit |= 0x80;
    PutByte(b, digit);
  } while (v > 0);
}
inline void PutStr(std::string& b, std::string_view s) {
  PutU16(b, static_cast<unsigned>(s.size()));
  b.append(s);
}

// CONNECT: clean start, no will, no username/password.
inline void Connect(std::string& b, bool v5, std::string_view client_id, unsigned keepalive) {
  const size_t len = 6 + 1 + 1 + 2 + (v5 ? 1 : 0) + 2 + client_id.size();
  PutByte(b, kConnect << 4);
  PutVarint(b, len);
  PutStr(b, "MQTT");
  PutByte(b, v5 ? 5 : 4);
  PutByte(b, 0x02);  // clean start
  PutU16(b, keepalive);
  if (v5) PutByte(b, 0);  // properties
  PutStr(b, client_id);
}

// PUBLISH header up to (not including) the payload; the caller appends
// exactly `payload_len` bytes next.
inline void PublishHeader(std::string& b, bool v5, std::string_view topic, int qos, unsigned packet_id,
                          size_t payload_len) {
  const size_t len = 2 + topic.size() + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload_len;
  PutByte(b, (kPublish << 4) | (static_cast<unsigned>(qos) << 1));
  PutVarint(b, len);
  PutStr(b, topic);
  if (qos > 0) PutU16(b, packet_id);
  if (v5) PutByte(b, 0);
}

// PUBACK (success; MQTT 5 allows omitting the reason code and properties).
inline void Puback(std::string& b, unsigned packet_id) {
  PutByte(b, kPuback << 4);
  PutByte(b, 2);
  PutU16(b, packet_id);
}

// SUBSCRIBE of one filter at `qos`.
inline void Subscribe(std::string& b, bool v5, unsigned packet_id, std::string_view filter, int qos) {
  const size_t len = 2 + (v5 ? 1 : 0) + 2 + filter.size() + 1;
  PutByte(b, (kSubscribe << 4) | 0x02);
  PutVarint(b, len);
  PutU16(b, packet_id);
  if (v5) PutByte(b, 0);
  PutStr(b, filter);
  PutByte(b, static_cast<unsigned>(qos));
}

inline void Pingreq(std::string& b) {
  PutByte(b, kPingreq << 4);
  PutByte(b, 0);
}

// DISCONNECT (MQTT 5: remaining length 0 = normal disconnection).
inline void Disconnect(std::string& b) {
  PutByte(b, kDisconnect << 4);
  PutByte(b, 0);
}

// One complete packet inside a receive buffer.
struct Packet {
  uint8_t type = 0;
  uint8_t flags = 0;
  const uint8_t* body = nullptr;
  size_t len = 0;
};

enum class Split { kPacket, kNeedMore, kMalformed };

// Splits the packet at the start of [data, data+size): on kPacket fills
// `p` and `consumed` (header + body).
inline Split SplitPacket(const uint8_t* data, size_t size, Packet* p, size_t* consumed) {
  if (size < 2) return Split::kNeedMore;
  size_t len = 0;
  size_t shift = 0;
  size_t i = 1;
  for (;; ++i) {
    if (i > 4) return Split::kMalformed;
    if (i >= size) return Split::kNeedMore;
    len |= static_cast<size_t>(data[i] & 0x7F) << shift;
    shift += 7;
    if ((data[i] & 0x80) == 0) break;
  }
  const size_t header = i + 1;
  if (size - header < len) return Split::kNeedMore;
  p->type = static_cast<uint8_t>(data[0] >> 4);
  p->flags = static_cast<uint8_t>(data[0] & 0x0F);
  p->body = data + header;
  p->len = len;
  *consumed = header + len;
  return Split::kPacket;
}

// Reads a variable byte integer at body[*pos]; false if malformed.
inline bool ReadVarint(const uint8_t* body, size_t len, size_t* pos, size_t* value) {
  size_t v = 0;
  size_t shift = 0;
  for (int n = 0; n < 4; ++n) {
    if (*pos >= len) return false;
    const uint8_t byte = body[(*pos)++];
    v |= static_cast<size_t>(byte & 0x7F) << shift;
    shift += 7;
    if ((byte & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

inline unsigned U16(const uint8_t* p) { return (static_cast<unsigned>(p[0]) << 8) | p[1]; }

// An incoming PUBLISH.
struct Publish {
  std::string_view topic;
  int qos = 0;
  unsigned packet_id = 0;
  const uint8_t* payload = nullptr;
  size_t payload_len = 0;
};

inline bool ParsePublish(const Packet& p, bool v5, Publish* out) {
  size_t pos = 0;
  if (p.len < 2) return false;
  const size_t tlen = U16(p.body);
  pos = 2;
  if (p.len - pos < tlen) return false;
  out->topic = std::string_view(reinterpret_cast<const char*>(p.body + pos), tlen);
  pos += tlen;
  out->qos = (p.flags >> 1) & 3;
  if (out->qos > 0) {
    if (p.len - pos < 2) return false;
    out->packet_id = U16(p.body + pos);
    pos += 2;
  }
  if (v5) {
    size_t plen = 0;
    if (!ReadVarint(p.body, p.len, &pos, &plen) || p.len - pos < plen) return false;
    pos += plen;
  }
  out->payload = p.body + pos;
  out->payload_len = p.len - pos;
  return true;
}

}  // namespace certacl::loadgen::mqtt

#endif  // CERTACL_BENCH_LOADGEN_MQTT_H_
