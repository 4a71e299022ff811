# PyTorch SDPA baseline for `minimax bench-ops` (causal, head dim 128, bf16, GQA 64/8), same FLOP count.
import torch, torch.nn.functional as F
for T in (4096, 16384):
    H, KV, d = 64, 8, 128
    q = torch.randn(1, H, T, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, KV, T, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, KV, T, d, device="cuda", dtype=torch.bfloat16)
    f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    for _ in range(3): f()
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); torch.cuda.synchronize(); times.append(a.elapsed_time(b))
    ms = sorted(times)[len(times) // 2]
    # Ten calls between one pair of events, as `minimax bench-ops` also reports.
    streamed = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(10): f()
        b.record(); torch.cuda.synchronize(); streamed.append(a.elapsed_time(b) / 10)
    sms = sorted(streamed)[len(streamed) // 2]
    flops = 4.0 * H * d * T * (T + 1) / 2
    print(f"| torch SDPA (causal) | B=1 H={H}/KV={KV} T={T} d={d} | {ms:.2f} | {flops / ms / 1e9:.1f} TFLOP/s; 10 back to back: {sms:.2f} ms each, {flops / sms / 1e9:.1f} TFLOP/s |")
