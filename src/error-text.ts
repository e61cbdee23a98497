/** The message of a thrown value for a log field or an error reply (a non-Error thrown value as text). */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
