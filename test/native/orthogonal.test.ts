/**
 * Seeded orthogonal transforms (core/orthogonal.h): the factorization rule, orthogonality
 * ‖TᵀT − I‖ at n ∈ {1, 2, 3, 64, 172, 4096} for every kind that applies, one application at
 * n = 11008, determinism from (seed, n) pinned by fingerprints, and the addon against the
 * TypeScript reference bit for bit (factors and transformed rows, forward and inverse).
 */
import { afterEach, describe, expect, it } from "vitest";
import { randomOrthogonalTransform, type OrthoFactor, type OrthoKind } from "../../extension/src/engine/kernels/index";
import { CancelledError } from "../../extension/src/engine/errors";
import { orthoApplyRef, orthoFactorsRef, orthoPlan, OrthoRng, reproducibleLog } from "../../extension/src/engine/kernels/reference-transforms";
import { bytesDiffer, gaussian, NATIVE_DISABLED, requireNative, uniform } from "./helpers";

const k = requireNative();

/** max |(T·Tᵀ − I)_ij|: float32 storage of T's rows (2^−24 each) summed over n terms. */
const ORTHO_TOL = 2e-6;
/** |‖Tx‖/‖x‖ − 1| and max |Tᵀ(Tx) − x| / max|x| after float32 rounding of every factor's output. */
const NORM_TOL = 1e-5;
const INVERSE_TOL = 2e-6;

const KINDS: OrthoKind[] = ["auto", "kron", "hadamard"];

function applies(kind: OrthoKind, n: number): boolean {
  return kind !== "hadamard" || (n & (n - 1)) === 0;
}

/** FNV-1a over the factors' bytes: a fingerprint of (n, seed, kind). */
function fingerprint(factors: OrthoFactor[]): string {
  let h = 0x811c9dc5;
  const eat = (a: ArrayBufferView) => {
    const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193) >>> 0;
  };
  for (const f of factors) {
    if (f.kind === "hadamard") eat(f.signs);
    else {
      eat(f.reflectors);
      eat(f.d);
    }
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * T's rows, sampled: apply T to the identity rows (e_i ↦ T·e_i, column i of T, so R = Tᵀ) and
 * return max |R_S·R_Sᵀ − I| over a sample S of rows (all rows when n ≤ 256), plus max |‖R_i‖ − 1| over all.
 */
async function orthogonalityError(n: number, kind: OrthoKind, seed: number): Promise<{ gram: number; norms: number }> {
  const T = randomOrthogonalTransform({ n, seed, kind });
  const R = new Float32Array(n * n);
  for (let i = 0; i < n; i++) R[i * n + i] = 1;
  await T.apply(R, n);
  const sample = n <= 256 ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: 96 }, (_, i) => (i * 7919) % n);
  let gram = 0;
  for (const a of sample) {
    for (const b of sample) {
      let s = 0;
      for (let j = 0; j < n; j++) s += R[a * n + j] * R[b * n + j];
      gram = Math.max(gram, Math.abs(s - (a === b ? 1 : 0)));
    }
  }
  let norms = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += R[i * n + j] ** 2;
    norms = Math.max(norms, Math.abs(Math.sqrt(s) - 1));
  }
  return { gram, norms };
}

describe("factorization rule", () => {
  const plan = (n: number, kind: OrthoKind) => orthoPlan(n, kind).map((f) => `${f.kind === "hadamard" ? "H" : "Q"}${f.size}`).join("⊗");

  it("auto: dense(odd part) ⊗ Hadamard(2^k); kron: balanced dense pair; hadamard: powers of two", () => {
    expect(plan(4096, "auto")).toBe("H4096");
    expect(plan(172, "auto")).toBe("Q43⊗H4");
    expect(plan(11008, "auto")).toBe("Q43⊗H256");
    expect(plan(5120, "auto")).toBe("Q5⊗H1024");
    expect(plan(13824, "auto")).toBe("Q27⊗H512");
    expect(plan(3, "auto")).toBe("Q3");
    expect(plan(1, "auto")).toBe("H1");
    expect(plan(64, "kron")).toBe("Q8⊗Q8");
    expect(plan(172, "kron")).toBe("Q4⊗Q43");
    expect(plan(4096, "kron")).toBe("Q64⊗Q64");
    expect(plan(11008, "kron")).toBe("Q86⊗Q128");
    expect(plan(4093, "kron")).toBe("Q4093"); // prime ≤ 4096: one dense factor
    expect(plan(2 * 4097, "auto")).toBe("Q17⊗Q241⊗H2"); // odd part 4097 = 17·241 > 4096: split again
  });

  it("a prime factor above 4096 has no transform; hadamard needs a power of two", () => {
    expect(() => orthoPlan(4099, "auto")).toThrow(/prime factor 4099 > 4096: no orthogonal transform/);
    expect(() => orthoPlan(8198, "kron")).toThrow(/prime factor 4099/);
    expect(() => orthoPlan(172, "hadamard")).toThrow(/needs n a power of two, got 172/);
    expect(() => orthoPlan(0, "auto")).toThrow(/n must be an integer ≥ 1/);
    expect(() => randomOrthogonalTransform({ n: 64, seed: -1 })).toThrow(/seed must be an integer in \[0, 2\^32\)/);
  });
});

describe("random streams", () => {
  it("reproducibleLog agrees with Math.log to ~1 ulp", () => {
    const u = uniform(1);
    for (let i = 0; i < 10000; i++) {
      const s = u() || 0.5;
      expect(Math.abs(reproducibleLog(s) - Math.log(s))).toBeLessThanOrEqual(4e-16 * Math.max(1, Math.abs(Math.log(s))));
    }
  });

  it("Gaussians have mean 0 and variance 1", () => {
    const rng = new OrthoRng(7, 100, 0);
    let s = 0, s2 = 0;
    const n = 200000;
    for (let i = 0; i < n; i++) {
      const g = rng.gaussian();
      s += g;
      s2 += g * g;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.01);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.01);
  });

  it("the same (seed, n, kind) gives the same factors; pinned fingerprints", () => {
    expect(fingerprint(orthoFactorsRef(172, 1, "auto"))).toBe(fingerprint(orthoFactorsRef(172, 1, "auto")));
    expect(fingerprint(orthoFactorsRef(172, 1, "auto"))).not.toBe(fingerprint(orthoFactorsRef(172, 2, "auto")));
    // Changing these means every stored rotation seed now gives a different transform.
    expect(
      [
        fingerprint(orthoFactorsRef(172, 1, "auto")),
        fingerprint(orthoFactorsRef(4096, 1, "hadamard")),
        fingerprint(orthoFactorsRef(64, 12345, "kron")),
        fingerprint(orthoFactorsRef(3, 0, "auto")),
      ],
    ).toEqual(PINNED);
  });
});

const PINNED = ["57bdf505", "57bb2d45", "2952ab3a", "0fe754d5"];

describe("orthogonality", () => {
  for (const n of [1, 2, 3, 64, 172, 4096]) {
    for (const kind of KINDS.filter((kd) => applies(kd, n))) {
      it(`n = ${n}, ${kind}: ‖T·Tᵀ − I‖max ≤ ${ORTHO_TOL}`, async () => {
        const { gram, norms } = await orthogonalityError(n, kind, 17);
        expect(gram).toBeLessThanOrEqual(ORTHO_TOL);
        expect(norms).toBeLessThanOrEqual(ORTHO_TOL);
      });
    }
  }

  for (const kind of ["auto", "kron"] as const) {
    it(`n = 11008, ${kind}: one application preserves norms, the inverse recovers x`, async () => {
      const n = 11008, rows = 4;
      const x = gaussian(rows * n, 0, 1, 11);
      const T = randomOrthogonalTransform({ n, seed: 3, kind });
      const y = await T.apply(x.slice(), rows);
      for (let r = 0; r < rows; r++) {
        let a = 0, b = 0;
        for (let j = 0; j < n; j++) {
          a += x[r * n + j] ** 2;
          b += y[r * n + j] ** 2;
        }
        expect(Math.abs(Math.sqrt(b / a) - 1)).toBeLessThanOrEqual(NORM_TOL);
      }
      const back = await T.apply(y, rows, { inverse: true });
      let err = 0, amax = 0;
      for (let i = 0; i < x.length; i++) {
        err = Math.max(err, Math.abs(back[i] - x[i]));
        amax = Math.max(amax, Math.abs(x[i]));
      }
      expect(err / amax).toBeLessThanOrEqual(INVERSE_TOL);
    });
  }

  it("spreads a one-hot outlier over every channel", async () => {
    const n = 4096;
    const spread = async (kind: OrthoKind) => {
      const x = new Float32Array(n);
      x[123] = 1;
      await randomOrthogonalTransform({ n, seed: 5, kind }).apply(x, 1);
      return Math.max(...x.map(Math.abs));
    };
    // Hadamard: every entry is ±1/√n.
    expect(await spread("auto")).toBe(1 / 64);
    // Q(64) ⊗ Q(64): a product of two Haar columns' entries, each at most ~√(2·ln(2·64·64)/64).
    expect(await spread("kron")).toBeLessThan((2 * Math.log(2 * n)) / 64);
  });
});

describe.skipIf(NATIVE_DISABLED)("native transforms vs reference", () => {
  const native = k!;
  afterEach(() => {
    native.setSimd("auto");
    native.setThreads(0);
  });

  it("factors are bit-identical for every kind and a range of n", () => {
    for (const n of [1, 2, 3, 5, 8, 12, 64, 97, 172, 257, 1000, 4096, 11008]) {
      for (const kind of KINDS.filter((kd) => applies(kd, n))) {
        for (const seed of [0, 1, 0xffffffff]) {
          const a = native.orthoFactors(n, seed, kind);
          const b = orthoFactorsRef(n, seed, kind);
          expect(fingerprint(a)).toBe(fingerprint(b));
          expect(a.map((f) => f.size)).toEqual(b.map((f) => f.size));
        }
      }
    }
  });

  for (const simd of ["auto", "scalar"] as const) {
    it(`${simd} path: rows transform bit for bit, forward and inverse`, async () => {
      native.setSimd(simd);
      for (const n of [1, 2, 3, 12, 64, 97, 172, 1000, 4096, 11008]) {
        for (const kind of KINDS.filter((kd) => applies(kd, n))) {
          const rows = n > 1000 ? 3 : 17;
          const x = gaussian(rows * n, 0.1, 1, n);
          const factors = orthoFactorsRef(n, 9, kind);
          const T = randomOrthogonalTransform({ n, seed: 9, kind });
          for (const inverse of [false, true]) {
            const want = x.slice();
            orthoApplyRef(factors, n, want, rows, inverse);
            const got = await T.apply(x.slice(), rows, { inverse });
            const diff = bytesDiffer(got, want);
            if (diff) throw new Error(`n ${n} ${kind} inverse ${inverse}: ${diff}`);
            expect(bytesDiffer(T.applySync(x.slice(), rows, { inverse }), want)).toBeUndefined();
          }
        }
      }
    });
  }

  it("does not depend on the thread count", async () => {
    const n = 172, rows = 2000;
    const x = gaussian(rows * n, 0, 1, 2);
    const T = randomOrthogonalTransform({ n, seed: 4, kind: "kron" });
    native.setThreads(1);
    const one = await T.apply(x.slice(), rows);
    native.setThreads(0);
    expect(bytesDiffer(await T.apply(x.slice(), rows), one)).toBeUndefined();
  });

  it("an aborted signal cancels", async () => {
    const n = 4093, rows = 2048; // one dense 4093 factor: seconds of work
    const T = randomOrthogonalTransform({ n, seed: 1, kind: "kron" });
    const controller = new AbortController();
    const run = T.apply(new Float32Array(rows * n), rows, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(run).rejects.toBeInstanceOf(CancelledError);
  });
});

describe("transform errors (native and fallback)", () => {
  it("NaN/Inf names X[row, col]; a wrong length names the shape", async () => {
    const T = randomOrthogonalTransform({ n: 172, seed: 1 });
    const x = gaussian(3 * 172, 0, 1, 1);
    x[172 + 100] = NaN;
    await expect(T.apply(x, 3)).rejects.toThrow(/X\[1, 100\] is NaN/);
    expect(() => orthoApplyRef(orthoFactorsRef(172, 1, "auto"), 172, x, 3, false)).toThrow(/X\[1, 100\] is NaN/);
    await expect(T.apply(new Float32Array(10), 1)).rejects.toThrow(/x has 10 values, not rows 1 × n 172/);
  });
});
