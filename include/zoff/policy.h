// OffloadPolicy: where blocks live, in what precision they are stored, moved and computed.
#pragma once

#include <cstdint>
#include <string>

#include "zoff/dtype.h"

namespace zoff {

// Where the ZO update of step t is applied (see shared design sketch §2 and docs/offload.md):
//   Gpu:      on the uploaded block, which is written back over the master (D2H every step);
//   Cpu:      by the host on the master before upload (the upload waits for it);
//   Deferred: on the uploaded block, never written back; a host thread applies the same
//             updates to the master behind the uploads (Note [Deferred update site]).
enum class UpdateSite { Gpu, Cpu, Deferred };
// The format blocks travel in over PCIe. Same = the storage dtype.
// BF16Split: bf16 masters stored and moved losslessly in 1.5 bytes per element (Note [Split bf16],
// kernels/split16.h); GPU update site, element-wise updates, delta write-back.
// Auto: BF16Split where the run allows it on a GPU, else Same (Note [Auto transfer] in
// src/train/run_plan.cpp); the trainer and `zoff plan` resolve it before anything else reads it.
enum class TransferFormat { Same, BF16, F16, FP8, BF16Split, Auto };
// How the GPU update site returns an updated block to its host master (Note [Delta write-back],
// kernels/delta.h): Dense copies the whole block D2H; Delta sends 2-bit change codes and an
// exception list that the host applies (16-bit masters only). Auto: Delta where it applies
// (resolved by the config loader).
enum class WriteBack { Auto, Dense, Delta };

struct OffloadPolicy {
  std::string name = "all-resident";
  DType storage_dtype = DType::F32;  // host (or resident) master copy: F32, BF16, F16
  TransferFormat transfer = TransferFormat::Same;
  DType compute_dtype = DType::F32;  // what the forward computes in: F32, BF16, F16
  bool offload = false;              // false: every block resident on the device
  int num_slots = 3;                 // K >= 2 device slots for streamed blocks
  int prefetch_depth = 1;            // blocks uploaded ahead of the one computing (< num_slots)
  int resident_blocks = -1;          // streamed runs: blocks kept resident; -1 = planner decides
  int64_t gpu_memory_budget = 0;     // bytes; 0 = no budget
  UpdateSite update_site = UpdateSite::Gpu;
  bool pin_memory = true;            // pinned host buffers (pageable fallback warns)
  int deferred_max_lag = 4;          // Deferred site: most updates a block's master may lag by
  WriteBack write_back = WriteBack::Auto;  // GPU site only
  int64_t delta_list_divisor = 64;   // Delta: exception list capacity = numel / this per block
};

const char* update_site_name(UpdateSite s);
const char* transfer_format_name(TransferFormat f);
const char* write_back_name(WriteBack w);
// Whether streamed blocks return by delta write-back under p (Auto counts as Delta where it can).
bool uses_delta_write_back(const OffloadPolicy& p);
// Whether p streams fp8 copies of bf16 masters updated at the GPU site (Note [fp8 at the GPU site],
// kernels/fp8_site.h): the delta write-back is then the only way back.
bool fp8_gpu_site(const OffloadPolicy& p);
// Whether p streams split bf16 masters (Note [Split bf16] in kernels/split16.h).
bool split_gpu_site(const OffloadPolicy& p);
// "12GiB", "500MiB", "1.5GB", "123456" -> bytes; InputError on anything else (message names `what`).
int64_t parse_byte_size(const std::string& s, const std::string& what);
std::string format_bytes(int64_t bytes);  // "12.00 GiB"

}  // namespace zoff
