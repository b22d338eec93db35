// A process-wide count of bytes held in memory for clients, under one bound: the shape of both
// response-memory.ts (replies a slow reader has not taken) and raw-body.ts (request bodies still
// arriving). Past the bound, each moves what it holds to an unlinked temp file (`filed`).
export class HeldBytes {
  /** the bound; set once at boot */
  maxBytes: number;
  #heldBytes = 0;
  #filed = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Bytes held in memory now. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** How many went to a temp file because the bound was reached. */
  get filed(): number {
    return this.#filed;
  }

  hold(bytes: number): void {
    this.#heldBytes += bytes;
  }

  free(bytes: number): void {
    this.#heldBytes -= bytes;
  }

  countFiled(): void {
    this.#filed++;
  }

  /** Prometheus lines: `gauge` (held bytes), `maxGauge` (the bound; null: not shown), `counter` (filed). */
  protected metricLines(
    gauge: [name: string, help: string],
    maxGauge: [name: string, help: string] | null,
    counter: [name: string, help: string],
  ): string {
    const lines = [`# HELP ${gauge[0]} ${gauge[1]}`, `# TYPE ${gauge[0]} gauge`, `${gauge[0]} ${this.#heldBytes}`];
    if (maxGauge !== null)
      lines.push(
        `# HELP ${maxGauge[0]} ${maxGauge[1]}`,
        `# TYPE ${maxGauge[0]} gauge`,
        `${maxGauge[0]} ${this.maxBytes}`,
      );
    lines.push(
      `# HELP ${counter[0]} ${counter[1]}`,
      `# TYPE ${counter[0]} counter`,
      `${counter[0]} ${this.#filed}`,
      '',
    );
    return lines.join('\n');
  }
}
