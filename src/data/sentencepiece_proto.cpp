// Reads SentencePiece's ModelProto from the protobuf wire format (no protobuf library needed).
#include "src/data/sentencepiece_proto.h"

#include <cstring>

#include "zoff/error.h"

namespace zoff {

namespace {

// Minimal protobuf wire-format reader.
class Proto {
 public:
  Proto(std::string_view data, const std::string& path) : data_(data), path_(path) {}
  bool done() const { return pos_ >= data_.size(); }
  void tag(uint32_t& field, uint32_t& wire) {
    uint64_t t = varint();
    field = static_cast<uint32_t>(t >> 3);
    wire = static_cast<uint32_t>(t & 7);
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("a varint longer than 10 bytes");
  }
  std::string_view bytes() {
    uint64_t n = varint();
    need(n);
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  float f32() {
    need(4);
    uint32_t u = 0;
    for (int i = 0; i < 4; ++i) u |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 4;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: need(8); pos_ += 8; break;
      case 2: bytes(); break;
      case 5: need(4); pos_ += 4; break;
      default: fail("wire type " + std::to_string(wire));
    }
  }
  void expect(uint32_t wire, uint32_t want, const char* field) {
    if (wire != want) fail(std::string("field ") + field + " has the wrong wire type");
  }

 private:
  void need(uint64_t n) {
    if (n > data_.size() - pos_) fail("a field running past the end");
  }
  [[noreturn]] void fail(const std::string& what) {
    ZOFF_INPUT_FAIL(path_, ": not a valid SentencePiece model (protobuf: ", what, ")");
  }
  std::string_view data_;
  size_t pos_ = 0;
  const std::string& path_;
};

}  // namespace

SpmModel parse_spm_model(std::string_view data, const std::string& path) {
  SpmModel m;
  Proto top(data, path);
  uint32_t f, w;
  while (!top.done()) {
    top.tag(f, w);
    if (f == 1) {  // pieces
      top.expect(w, 2, "pieces");
      Proto p(top.bytes(), path);
      SpmPiece piece;
      while (!p.done()) {
        p.tag(f, w);
        if (f == 1) { p.expect(w, 2, "piece"); piece.text = std::string(p.bytes()); }
        else if (f == 2) { p.expect(w, 5, "score"); piece.score = p.f32(); }
        else if (f == 3) { p.expect(w, 0, "type"); piece.type = static_cast<SpmPieceType>(p.varint()); }
        else p.skip(w);
      }
      m.pieces.push_back(std::move(piece));
    } else if (f == 2) {  // trainer_spec
      top.expect(w, 2, "trainer_spec");
      Proto t(top.bytes(), path);
      while (!t.done()) {
        t.tag(f, w);
        if (f == 3 && w == 0) m.model_type = static_cast<int>(t.varint());
        else if (f == 35 && w == 0) m.byte_fallback = t.varint() != 0;
        else if (f == 24 && w == 0) m.treat_ws_as_suffix = t.varint() != 0;
        else if (f == 44 && w == 2) m.unk_surface = std::string(t.bytes());
        else if (f == 45 && w == 2) m.unk_piece = std::string(t.bytes());
        else if (f == 46 && w == 2) m.bos_piece = std::string(t.bytes());
        else if (f == 47 && w == 2) m.eos_piece = std::string(t.bytes());
        else if (f == 48 && w == 2) m.pad_piece = std::string(t.bytes());
        else t.skip(w);
      }
    } else if (f == 3) {  // normalizer_spec
      top.expect(w, 2, "normalizer_spec");
      Proto n(top.bytes(), path);
      while (!n.done()) {
        n.tag(f, w);
        if (f == 1 && w == 2) m.normalizer_name = std::string(n.bytes());
        else if (f == 2 && w == 2) m.has_charsmap = !n.bytes().empty();
        else if (f == 3 && w == 0) m.add_dummy_prefix = n.varint() != 0;
        else if (f == 4 && w == 0) m.remove_extra_ws = n.varint() != 0;
        else if (f == 5 && w == 0) m.escape_ws = n.varint() != 0;
        else n.skip(w);
      }
    } else {
      top.skip(w);
    }
  }
  return m;
}

}  // namespace zoff
