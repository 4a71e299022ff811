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
src = strip(src, ['pack_bf16', 'silu_fast', 'smem_addr', 'ldsm_x4', 'ldsm_x4_t', 'mma_bf16', 'lp_barrier', 'lp_scores_arrive', 'lp_scores_wait'])
src = re.sub(r'extern __shared__ unsigned char (\w+)\[\];', r'unsigned char* \1 = emu_smem;', src)
src = re.sub(r'extern __shared__ float (\w+)\[\];', r'float* \1 = (float*)emu_smem;', src)
src = src.replace('"unroll"', '"GCC unroll 1"').replace('__expf(', 'expf(')
# helpers after the u4 definition (they need bf16/u32 typedefs)
marker = '__device__ __forceinline__ uint4 u4('
i = src.index(marker)
helpers = open(os.path.join(sys.argv[3], 'emulated_ptx.h')).read()
print(open(os.path.join(sys.argv[3], 'prelude.h')).read()); print(common); print(src[:i]); print(helpers); print(src[i:])
