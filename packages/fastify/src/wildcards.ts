// Lists of names where "*" matches any characters ("wordpress_logged_in_*", "*/wp-cron.php"), as
// one regular expression: the micro-cache's bypass cookies, classic mode's ignore_client_abort.

/** One anchored pattern matching any of `names`; `*` is the only special character. null for []. */
export function wildcardPattern(names: readonly string[]): RegExp | null {
  if (names.length === 0) return null;
  const alternatives = names.map((name) =>
    name
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*'),
  );
  return new RegExp(`^(?:${alternatives.join('|')})$`);
}
