/** `{{name}}` placeholders in instructions, filled from API variables or call context. */
export function fillTemplate(template: string, variables: Readonly<Record<string, string>>): string {
  return template.replace(
    /\{\{\s*([A-Za-z0-9_-]+)\s*\}\}/g,
    (whole, name: string) => variables[name] ?? whole,
  );
}

/** SIP header values are untrusted text: no control characters, bounded length. */
const MAX_CONTEXT_VALUE_CHARS = 200;
function sanitize(value: string): string {
  let clean = '';
  for (const ch of value) clean += ch < ' ' || ch === '\u007f' ? ' ' : ch;
  return clean.trim().slice(0, MAX_CONTEXT_VALUE_CHARS);
}

export interface CallFacts {
  from: string;
  to: string;
  /** Selected SIP headers (lower-case names) present on the INVITE. */
  headers: Readonly<Record<string, string>>;
}

/**
 * Instructions for an inbound call: placeholders ({{from}}, {{to}}, {{x-customer-id}}…) filled, and the
 * call's facts appended so the agent can use them (e.g. greet a known customer).
 */
export function withCallContext(instructions: string, facts: CallFacts): string {
  const values: Record<string, string> = { from: sanitize(facts.from), to: sanitize(facts.to) };
  for (const [name, value] of Object.entries(facts.headers)) values[name] = sanitize(value);
  const lines = Object.entries(values)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `- ${k}: ${v}`);
  const filled = fillTemplate(instructions, values);
  return lines.length === 0
    ? filled
    : `${filled}\n\nCall context from the phone network:\n${lines.join('\n')}`;
}
