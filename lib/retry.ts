/**
 * "Full jitter" backoff: a uniform delay in [0, min(max, initial * 2^attempt)). Kafka requests are
 * retried by kafkajs and S3 requests by the AWS SDK, each with their own jittered backoff; this is
 * for our own loops (redelivering a failed batch in the embedded bus, Kafka admin reads kafkajs does not
 * retry, a runner waiting for a checkpoint while the database is down).
 */
export function backoffDelay(attempt: number, options: { initialDelayMs: number; maxDelayMs: number }, random = Math.random): number {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}
