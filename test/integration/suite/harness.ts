// A small test runner for inside the VS Code extension host (no mocha there): named cases run
// one after another, each under its own time limit; results go to a JSON file the vitest side
// reads (QUANTLENS_TEST_RESULTS) and, line by line, to the host's log.

export interface CaseResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

interface Case {
  name: string;
  fn: () => Promise<void> | void;
  timeoutMs: number;
}

const cases: Case[] = [];

/** Register a case. Cases run in registration order; a failure does not stop the others. */
export function test(name: string, fn: () => Promise<void> | void, timeoutMs = 120_000): void {
  if (cases.some((c) => c.name === name)) throw new Error(`duplicate test name: ${name}`);
  cases.push({ name, fn, timeoutMs });
}

export function registered(): string[] {
  return cases.map((c) => c.name);
}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

export async function runAll(log: (line: string) => void): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(c.fn),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${c.timeoutMs} ms`)), c.timeoutMs);
        }),
      ]);
      results.push({ name: c.name, ok: true, ms: Date.now() - t0 });
      log(`  ✓ ${c.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      const error = describeError(e);
      results.push({ name: c.name, ok: false, ms: Date.now() - t0, error });
      log(`  ✗ ${c.name} (${Date.now() - t0} ms)\n${error.replace(/^/gm, "      ")}`);
    } finally {
      clearTimeout(timer);
    }
  }
  return results;
}
