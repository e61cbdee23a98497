// A small parser for the Prometheus text exposition format 0.0.4, independent of prom-client,
// so tests read /metrics output back into samples: names, labels (with the three escapes
// undone; raw newlines and bad escapes rejected) and values, plus # TYPE and # HELP lines.

export interface Sample { name: string; labels: Record<string, string>; value: number }
export interface Exposition { samples: Sample[]; types: Map<string, string>; help: Map<string, string> }

function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    const name = s.slice(i, eq);
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || s[eq + 1] !== '"') throw new Error(`bad label at ${s.slice(i)}`);
    let j = eq + 2;
    let v = '';
    for (; s[j] !== '"'; j++) {
      if (j >= s.length) throw new Error('unterminated label value');
      if (s[j] === '\\') {
        j++;
        const c = s[j];
        if (c === 'n') v += '\n';
        else if (c === '\\' || c === '"') v += c;
        else throw new Error(`bad escape \\${c}`);
      } else if (s[j] === '\n') {
        throw new Error('raw newline in label value');
      } else {
        v += s[j];
      }
    }
    if (name in out) throw new Error(`duplicate label ${name}`);
    out[name] = v;
    i = j + 1;
    if (s[i] === ',') i++;
  }
  return out;
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) { types.set(m[1]!, m[2]!); continue; }
    m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) { help.set(m[1]!, m[2]!); continue; }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const value = m[3] === '+Inf' ? Infinity : m[3] === 'NaN' ? NaN : Number(m[3]);
    samples.push({ name: m[1]!, labels: m[2] ? parseLabels(m[2]) : {}, value });
  }
  return { samples, types, help };
}

export const series = (e: Exposition, name: string, match: Record<string, string> = {}): Sample[] =>
  e.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));

export function one(e: Exposition, name: string, match: Record<string, string> = {}): Sample {
  const found = series(e, name, match);
  if (found.length !== 1) throw new Error(`${found.length} series of ${name} ${JSON.stringify(match)}`);
  return found[0]!;
}
