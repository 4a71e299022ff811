#!/bin/bash
# Sensitivity check of the emulator on lightning_wgmma: applies one deliberate bug at a time to a copy of lightning.cu
# (a sed expression each) and runs one case; every mutant must fail (nonzero exit: an abort of a guard or an error
# over the bound). usage: tools/kernel_emulator/mutation_check.sh [case number, default 6] [part of a mutant's name]
# MUTANTS=pair: lightning_pair's mutants instead, default case 8. MUTANTS=plan: the state plan's (pass 0 items, the scan
# over gaps, pass 1's start slots) on lightning_wgmma, default case 9.
here=$(cd "$(dirname "$0")" && pwd); kernels=$here/../../src/MiniMaxSharp.Cuda/Kernels; out=$(mktemp -d)
kernel=lightning_wgmma; case=${1:-6}
mutants=(
  'scores and Q S read before their wait|s/wg_wait0();   \/\/ scores and Q S/\/\/ removed/'
  'SFULL parity off by one|s/mbar_wait(bars + LW_SFULL, b \& 1);/mbar_wait(bars + LW_SFULL, (b + 1) \& 1);/'
  'EMPTY parity off by one|s/mbar_wait(bars + LW_EMPTY + st, ((b >> 1) + 1) \& 1)/mbar_wait(bars + LW_EMPTY + st, (b >> 1) \& 1)/'
  'EMPTY wait removed (stage overwritten while read)|s/if (b >= 2) mbar_wait(bars + LW_EMPTY + st, ((b >> 1) + 1) \& 1);/;/'
  'SEMPTY wait removed (S copy overwritten while Q S reads it)|s/mbar_wait(bars + LW_SEMPTY, b \& 1);/;/'
  'transform fence removed|/mbar_arrive(bars + LW_FULL + st);/{x;s/.*//;x};0,/fence_async_smem();/{/fence_async_smem();/s/fence_async_smem();/;/}'
  'named_sync(2) removed (raw buffer reloaded while read)|s/named_sync(2, 128);/;/'
  'named_sync(1) removed (output rows copied before written)|s/named_sync(1, 128);/;/'
  'no swizzle in lw_off|s/((((c \& 63) >> 3) ^ (r \& 7)) << 4)/((((c \& 63) >> 3)) << 4)/'
  'SBO 512 in lw_desc|s/((u64)(1024 >> 4) << 32)/((u64)(512 >> 4) << 32)/'
  'causal mask: the zeros before the decay table set to 1|s/if (tid < LC_BM) table\[tid - LC_BM\] = 0.0f;/if (tid < LC_BM) table[tid - LC_BM] = 1.0f;/'
  'state decay table[m - 1]|s/lw_state_step<128>(S, table\[m\]/lw_state_step<128>(S, table[m - 1]/'
  'state: FULL wait removed|s/            mbar_wait(bars + LW_FULL + st, (b >> 1) \& 1);/            ;/'
  'outputs: SFULL wait removed|s/mbar_wait(bars + LW_SFULL, b \& 1);/;/'
  'keys: raw k landed wait removed|s/mbar_wait(bars + LW_RAWK_BAR + st, (b >> 1) \& 1);/;/'
  'LW_SHARED 136 bytes short|s/#define LW_SHARED (LW_BARS + 256 + 1024)/#define LW_SHARED (LW_BARS + 120 + 1024)/'
  'alignment of the base dropped|s/unsigned char\* base = lw_smem + ((1024 - (smem_addr(lw_smem) \& 1023)) \& 1023);/unsigned char* base = lw_smem;/'
)
if [ "$MUTANTS" = pair ]; then
kernel=lightning_pair; case=${1:-8}
mutants=(
  'PEERFREE wait removed (the other CTA sends into a stage still read here)|s/mbar_wait(bars + LPR_PEERFREE + st, parity);   \/\/ and there/;/'
  'PEERFREE arrival removed|s/if (keys \&\& wt == 0) mbar_arrive_remote(bars + LPR_PEERFREE + st, other);/;/'
  'PEERFREE arrival on this CTA instead of the other|s/mbar_arrive_remote(bars + LPR_PEERFREE + st, other)/mbar_arrive_remote(bars + LPR_PEERFREE + st, half)/'
  'expect_tx of two tiles instead of three|s/mbar_arrive_expect_tx(bars + LPR_FULL + st, 3 \* 8192)/mbar_arrive_expect_tx(bars + LPR_FULL + st, 2 * 8192)/'
  'halves sent to this CTA, not the other|s/bulk_copy_to_cta(tile, tile, 8192, bars + LPR_FULL + st, other);/bulk_copy_to_cta(tile, tile, 8192, bars + LPR_FULL + st, half);/'
  'named_sync before the send removed (halves sent while written)|s/named_sync(wg, 128);   \/\/ the halves/;   \/\/ the halves/'
  'fence before the send removed|/else lpr_stage<0>(raw/,/named_sync(wg, 128)/s/fence_async_smem();/;/'
  'FULL count 128 (the Q half not waited for)|s/(i >= LPR_FULL \&\& i < LPR_VFULL) || (i >= LPR_EMPTY/(i >= LPR_EMPTY/'
  'LANDED wait removed (raw q, k read before landing)|s/mbar_wait(landed + slot, (b \/ LPR_SLOTS) \& 1);/;/'
  'WG2 EMPTY wait removed (stage rewritten while read here)|s/mbar_wait(bars + LPR_EMPTY + st, parity);   \/\/ block b-2 has left this stage here/;/'
  'state: FULL wait removed (Kdt of the other half not yet landed)|s/mbar_wait(bars + LPR_FULL + st, (b >> 1) \& 1);    \/\/ Kd/;    \/\/ Kd/'
  'initial cluster_sync removed (the other CTA reaches barriers not yet initialised)|s/cluster_sync();   \/\/ both CTAs/;   \/\/ both CTAs/'
  'columns of half 0 in both CTAs|s/col0 = (int)half \* 64;/col0 = 0;/'
)
fi
if [ "$MUTANTS" = plan ]; then
case=${1:-9}
mutants=(
  'scan: the chain not decayed from item to item|s/const float a = stepDecay\[j0 + j\];/const float a = 1.0f;/'
  'scan: chunk start states not written|s/if (stepFlags\[j0 + j\] \& 2) \*(float4\*)/if (false) *(float4*)/'
  'scan: 0-token items read as local states|s/j0 + j < m \&\& (stepFlags\[j0 + j\] \& 1) ?/j0 + j < m ?/'
  'pass 0: head from blockIdx.y, not from the item|s/it.h = mode == 0 ? items\[4 \* item + 3\] : (int)blockIdx.y;/it.h = (int)blockIdx.y;/'
  'pass 1: start slot of head 0 for every head|s/startSlot\[item \* heads + h\]/startSlot[item * heads]/g'
  'pass 0: local state written to its own slot|s/float\* dst = mode == 0 ? slots + (i64)(item + 1) \* LC_DD/float* dst = mode == 0 ? slots + (i64)item * LC_DD/'
)
fi
failed=0
for entry in "${mutants[@]}"; do
  name=${entry%%|*}; expr=${entry#*|}
  [[ -n "$2" && "$name" != *"$2"* ]] && continue
  mkdir -p "$out/k"; sed "$expr" "$kernels/lightning.cu" > "$out/k/lightning.cu"
  if cmp -s "$out/k/lightning.cu" "$kernels/lightning.cu"; then echo "MUTATION NOT APPLIED: $name"; failed=1; continue; fi
  python3 "$here/make_kernels.py" "$out/k/lightning.cu" "$kernels/common.cuh" "$here" > "$out/kernels.inc"
  g++ -std=c++20 -O1 -pthread -w -I"$out" -I"$here" "$here/lightning_check.cpp" -o "$out/lightning_check" || { echo "compile failed: $name"; failed=1; continue; }
  log=$(timeout 300 "$out/lightning_check" "$case" "$kernel" 2>&1); rc=$?
  why=$(echo "$log" | grep -E "rel err|abort|deadlock|mbar_|wgmma|never|worst|shared memory|bulk_|CTA rank|source" | grep -v "^  lightning" | head -2 | tr '\n' ' ')
  if [ $rc -eq 0 ]; then echo "NOT CAUGHT: $name ($why)"; failed=1; else echo "caught (rc $rc): $name: $why"; fi
done
exit $failed
