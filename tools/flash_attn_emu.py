# tools/flash_attn_emu.py: a numpy emulation of kernels/cuda/flash_attn.cu's tile loops (64x64 tiles,
# packed varlen sequences, GQA, causal masks, base-2 online softmax, D = rowsum(dO*O), the two
# backward passes) with BF16 rounding where the kernels round, against a float64 reference.
# It checks the algorithm and its index/mask arithmetic, not the CUDA specifics (warps, WMMA,
# shared-memory overlays); it gave the expected errors quoted in kernels/cuda/README.md.
# Usage: python3 tools/flash_attn_emu.py  (about a minute)
import numpy as np
def bf(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)
LOG2E, LN2 = 1.4426950408889634, 0.6931471805599453
def ref(q, k, v, dO, st, NH, KVH, HS, sc):
    N = st[-1]; grp = NH // KVH
    out = np.zeros_like(q); lse = np.zeros((N, NH)); dq = np.zeros_like(q); dk = np.zeros_like(k); dv = np.zeros_like(v)
    for b in range(len(st) - 1):
        t0, T = st[b], st[b + 1] - st[b]
        if T == 0: continue
        for h in range(NH):
            g = h // grp
            Q, K, V, G = q[t0:t0+T, h].astype(np.float64), k[t0:t0+T, g].astype(np.float64), v[t0:t0+T, g].astype(np.float64), dO[t0:t0+T, h].astype(np.float64)
            S = sc * Q @ K.T; S[np.triu_indices(T, 1)] = -np.inf
            m = S.max(1, keepdims=True); P = np.exp(S - m); l = P.sum(1, keepdims=True); P /= l
            O = P @ V; out[t0:t0+T, h] = O; lse[t0:t0+T, h] = (m + np.log(l))[:, 0]
            dP = G @ V.T; D = (G * O).sum(1, keepdims=True); dS = P * (dP - D)
            dq[t0:t0+T, h] = sc * dS @ K; dk[t0:t0+T, g] += sc * dS.T @ Q; dv[t0:t0+T, g] += P.T @ G
    return out, lse, dq, dk, dv
def flash(q, k, v, dO, oref, lseref, st, NH, KVH, HS, sc):
    N = st[-1]; grp = NH // KVH; s2 = np.float32(sc * LOG2E)
    out = np.full_like(q, np.nan); lse = np.full((N, NH), np.nan, np.float32)
    dq = np.zeros_like(q); dk = np.zeros_like(k); dv = np.zeros_like(v); Dws = np.zeros((N, NH), np.float32)
    maxT = max(st[i+1]-st[i] for i in range(len(st)-1)); tiles = (maxT + 63) // 64
    def tile(x, r0, valid):  # 64 rows, zero beyond valid
        t = np.zeros((64, x.shape[-1]), np.float32); n = max(0, min(64, valid)); t[:n] = x[r0:r0+n]; return bf(t)
    for b in range(len(st) - 1):
        t0, T = st[b], st[b+1] - st[b]
        for h in range(NH):
            g = h // grp
            for ti in range(tiles):
                i0 = ti * 64
                if i0 >= T: continue
                Qs = tile(q[t0:, h], i0, T - i0); O = np.zeros((64, HS), np.float32)
                m = np.full(64, -np.inf, np.float32); l = np.zeros(64, np.float32); qi = i0 + np.arange(64)
                kend = min(i0 + 64, T)
                for j0 in range(0, kend, 64):
                    Ks = tile(k[t0:, g], j0, kend - j0); Vs = tile(v[t0:, g], j0, kend - j0)
                    S = Qs @ Ks.T; kj = j0 + np.arange(64)
                    valid = (kj[None, :] <= qi[:, None]) & (qi[:, None] < T)
                    sv = np.where(valid, S * s2, -np.inf)
                    mnew = np.maximum(m, sv.max(1)); base = np.where(mnew == -np.inf, 0, mnew)
                    alpha = np.exp2(m - base); p = np.exp2(sv - base[:, None])
                    l = l * alpha + p.sum(1); m = mnew
                    O = O * alpha[:, None] + bf(p) @ Vs
                for r in range(64):
                    if qi[r] < T:
                        out[t0 + qi[r], h] = O[r] / l[r]; lse[t0 + qi[r], h] = (m[r] + np.log2(l[r])) * LN2
    for b in range(len(st) - 1):  # dq pass
        t0, T = st[b], st[b+1] - st[b]
        for h in range(NH):
            g = h // grp
            for ti in range(tiles):
                i0 = ti * 64
                if i0 >= T: continue
                Qs = tile(q[t0:, h], i0, T - i0); dOs = tile(dO[t0:, h], i0, T - i0); qi = i0 + np.arange(64)
                n = min(64, T - i0)
                Dv = np.zeros(64, np.float32); Dv[:n] = (dO[t0+i0:t0+i0+n, h] * oref[t0+i0:t0+i0+n, h]).sum(1)
                Ls = np.zeros(64, np.float32); Ls[:n] = lseref[t0+i0:t0+i0+n, h] * LOG2E
                Dws[t0+i0:t0+i0+n, h] = Dv[:n]
                acc = np.zeros((64, HS), np.float32); kend = min(i0 + 64, T)
                for j0 in range(0, kend, 64):
                    Ks = tile(k[t0:, g], j0, kend - j0); Vs = tile(v[t0:, g], j0, kend - j0)
                    S = Qs @ Ks.T; dP = dOs @ Vs.T; kj = j0 + np.arange(64)
                    valid = (kj[None, :] <= qi[:, None]) & (qi[:, None] < T)
                    p = np.where(valid, np.exp2(S * s2 - Ls[:, None]), 0)
                    acc += bf(p * (dP - Dv[:, None])) @ Ks
                dq[t0+i0:t0+i0+n, h] += sc * acc[:n]
    for b in range(len(st) - 1):  # dk dv pass
        t0, T = st[b], st[b+1] - st[b]
        for g in range(KVH):
            for tj in range(tiles):
                j0 = tj * 64
                if j0 >= T: continue
                Ks = tile(k[t0:, g], j0, T - j0); Vs = tile(v[t0:, g], j0, T - j0); kj = j0 + np.arange(64)
                dK = np.zeros((64, HS), np.float32); dV = np.zeros((64, HS), np.float32)
                for h in range(g * grp, (g + 1) * grp):
                    for i0 in range(j0, T, 64):
                        Qs = tile(q[t0:, h], i0, T - i0); dOs = tile(dO[t0:, h], i0, T - i0); n = min(64, T - i0)
                        Ls = np.zeros(64, np.float32); Ls[:n] = lseref[t0+i0:t0+i0+n, h] * LOG2E
                        Dv = np.zeros(64, np.float32); Dv[:n] = Dws[t0+i0:t0+i0+n, h]
                        St = Ks @ Qs.T; dPt = Vs @ dOs.T; qa = i0 + np.arange(64)
                        valid = (kj[:, None] <= qa[None, :]) & (qa[None, :] < T)
                        p = np.where(valid, np.exp2(St * s2 - Ls[None, :]), 0)
                        dV += bf(p) @ dOs; dK += bf(p * (dPt - Dv[None, :])) @ Qs
                nn = min(64, T - j0)
                dk[t0+j0:t0+j0+nn, g] += sc * dK[:nn]; dv[t0+j0:t0+j0+nn, g] += dV[:nn]
    return out, lse, dq, dk, dv
def rel(a, b): return np.linalg.norm((a - b).ravel()) / np.linalg.norm(b.ravel())
rng = np.random.default_rng(0)
for lens, NH, KVH, HS in [([1, 37, 0, 200, 64, 129], 4, 4, 64), ([300, 65], 8, 2, 128), ([130, 1], 4, 1, 32)]:
    st = np.concatenate([[0], np.cumsum(lens)]).astype(int); N = st[-1]; sc = 1 / np.sqrt(HS)
    q = rng.uniform(-1, 1, (N, NH, HS)).astype(np.float32); k = rng.uniform(-1, 1, (N, KVH, HS)).astype(np.float32)
    v = rng.uniform(-1, 1, (N, KVH, HS)).astype(np.float32); dO = rng.uniform(-1, 1, (N, NH, HS)).astype(np.float32)
    R = ref(q, k, v, dO, st, NH, KVH, HS, sc)
    F = flash(q, k, v, dO, R[0].astype(np.float32), R[1].astype(np.float32), st, NH, KVH, HS, sc)
    print(lens, NH, KVH, HS, ' '.join('%s=%.2e' % (n, rel(f, r)) for n, f, r in zip(['out', 'lse', 'dq', 'dk', 'dv'], F, R)))
