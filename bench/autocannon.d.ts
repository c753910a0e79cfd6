/**
 * The part of autocannon's API the benchmarks use, declared here so that
 * the project typechecks without bench/node_modules (the test command does
 * not install the benchmark package).
 */
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    pipelining?: number;
  }
  interface Histogram {
    p50: number;
    p99: number;
    average: number;
  }
  interface Result {
    duration: number;
    requests: Histogram & { total: number };
    latency: Histogram;
    non2xx: number;
    '3xx': number;
    errors: number;
  }
  function autocannon(opts: Options): Promise<Result>;
  export default autocannon;
}
