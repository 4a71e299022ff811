"""Turns lightning.cu (with common.cuh) into host C++ for the emulator: the inline-PTX helpers are replaced by
emulated_ptx.h, dynamic shared memory by one host buffer. usage: make_kernels.py lightning.cu common.cuh emulator_dir"""
import re, sys, os
src = open(sys.argv[1]).read()
common = open(sys.argv[2]).read()
def strip(text, names):
    lines = text.split('\n'); out = []; i = 0
    while i < len(lines):
        l = lines[i]
        if any(re.search(r'__device__ __forceinline__ \w+ ' + n + r'\(', l) for n in names):
            depth = l.count('{') - l.count('}'); i += 1
            while depth > 0 or (i < len(lines) and depth == 0 and '{' not in l and lines[i].strip().startswith('{')):
                l = lines[i]; depth += l.count('{') - l.count('}'); i += 1
            continue
        out.append(l); i += 1
    return '\n'.join(out)
src = strip(src, ['pack_bf16', 'silu_fast', 'smem_addr', 'ldsm_x4', 'ldsm_x4_t', 'mma_bf16', 'lp_barrier', 'lp_scores_arrive', 'lp_scores_wait',
    'mbar_init', 'mbar_arrive', 'mbar_wait', 'cp_async16', 'cp_async_mbar_arrive', 'fence_async_smem', 'stsm_x4', 'stsm_x4_t',
    'wg_fence', 'wg_commit', 'wg_wait0', 'wg_wait1', 'wgmma_n64_ss', 'wgmma_n128_ss', 'wgmma_n128_rs', 'wgmma_n64_rs', 'named_sync', 'reg_fence',
    'setmaxnreg_inc', 'setmaxnreg_dec', 'cluster_rank', 'cluster_sync', 'fence_mbar_init', 'mbar_arrive_expect_tx', 'mbar_arrive_remote',
    'mbar_wait_cluster', 'bulk_multicast', 'bulk_copy_to_cta', 'wgmma_n16_ss', 'wgmma_n16_rs', 'wgmma_n32_ss', 'wgmma_n32_rs'])
# Dynamic shared memory is the calling thread's CTA's (emu_smem names it): a file-scope declaration becomes a macro (a
# pointer variable there would be bound once, to one CTA), one inside a function a local pointer.
align = r'(?:__align__\(\d+\)\s+)?'
for ty, cast in (('unsigned char', ''), ('float', '(float*)')):
    decl = r'extern __shared__\s+' + align + ty + r'\s+' + align + r'(\w+)\[\];'
    src = re.sub(r'(?m)^' + decl, r'#define \1 (' + cast + r'(emu_smem + EMU_DYN_OFFSET))', src)
    src = re.sub(decl, ty + r'* \1 = ' + cast + r'(emu_smem + EMU_DYN_OFFSET);', src)
src = src.replace('"unroll"', '"GCC unroll 1"').replace('__expf(', 'expf(')
# helpers after the u4 definition (they need bf16/u32 typedefs)
marker = '__device__ __forceinline__ uint4 u4('
i = src.index(marker)
helpers = open(os.path.join(sys.argv[3], 'emulated_ptx.h')).read()
print(open(os.path.join(sys.argv[3], 'prelude.h')).read())
if re.search(r'__global__ void (__launch_bounds__\([^)]*\) )?lightning_wgmma\(', src): print('#define HAS_LIGHTNING_WGMMA 1')
if 'lightning_cluster2(' in src: print('#define HAS_LIGHTNING_CLUSTER 1')
if 'lightning_pair(' in src: print('#define HAS_LIGHTNING_PAIR 1')
print(common); print(src[:i]); print(helpers); print(src[i:])
