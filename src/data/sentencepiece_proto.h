// SentencePiece's ModelProto (tokenizer.model): the fields zoff uses, read from the protobuf wire format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zoff {

enum class SpmPieceType : uint8_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct SpmPiece {
  std::string text;
  float score = 0;
  SpmPieceType type = SpmPieceType::kNormal;  // as stored; may be out of the enum's range
};

// Field numbers and defaults as in sentencepiece_model.proto.
struct SpmModel {
  std::vector<SpmPiece> pieces;                    // ModelProto.pieces (1)
  int model_type = 1;                              // trainer_spec.model_type (3): 1 UNIGRAM, 2 BPE
  bool byte_fallback = false;                      // trainer_spec (35)
  bool treat_ws_as_suffix = false;                 // trainer_spec (24)
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";  // (45-48)
  std::string unk_surface = " \xE2\x81\x87 ";    // trainer_spec (44)
  std::string normalizer_name;                     // normalizer_spec.name (1)
  bool has_charsmap = false;                       // normalizer_spec.precompiled_charsmap (2) non-empty
  bool add_dummy_prefix = true;                    // normalizer_spec (3)
  bool remove_extra_ws = true;                     // normalizer_spec (4)
  bool escape_ws = true;                           // normalizer_spec (5)
};

// Parses a serialized ModelProto; InputError naming `path` on malformed protobuf.
SpmModel parse_spm_model(std::string_view data, const std::string& path);

}  // namespace zoff
