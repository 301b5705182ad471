/**
 * A small reader of shell text, enough for build-eif.sh and Dockerfile RUN
 * lines: words with quotes and backslashes, simple commands split at the
 * operators, continuation lines joined. No expansion. Used by the tests that
 * take their facts from build-eif.sh rather than repeating them
 * (build/image-bundles.ts, build/dockerfile.test.ts).
 */

/** POSIX-ish words: quotes, backslashes, and the operators && || ; | as words of their own. No expansion. */
export function shellWords(s: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  const push = () => {
    if (cur !== undefined) words.push(cur);
    cur = undefined;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && s[i + 1] === '\n') {
      i++;
    } else if (/\s/.test(c)) {
      push();
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in ${s}`);
      cur = (cur ?? '') + s.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let v = '';
      i++;
      for (; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === '\\' && '"\\$`'.includes(s[i + 1] ?? '')) i++;
        v += s[i];
      }
      if (i >= s.length) throw new Error(`unterminated " in ${s}`);
      cur = (cur ?? '') + v;
    } else if (c === '\\') {
      cur = (cur ?? '') + (s[i + 1] ?? '');
      i++;
    } else if (c === '&' && s[i + 1] === '&') {
      push();
      words.push('&&');
      i++;
    } else if (c === '|' && s[i + 1] === '|') {
      push();
      words.push('||');
      i++;
    } else if (c === ';' || c === '|') {
      push();
      words.push(c);
    } else {
      cur = (cur ?? '') + c;
    }
  }
  push();
  return words;
}

/** Simple commands of a shell text (split at && || ; |). */
export function commands(s: string): string[][] {
  const out: string[][] = [[]];
  for (const w of shellWords(s)) {
    if (['&&', '||', ';', '|'].includes(w)) out.push([]);
    else out[out.length - 1]!.push(w);
  }
  // `do install …` is the command install: drop the compound-command keywords in front.
  return out.map((c) => {
    let k = 0;
    while (k < c.length && ['do', 'then', 'else', '!', '{', '('].includes(c[k]!)) k++;
    return c.slice(k);
  }).filter((c) => c.length > 0);
}

/** build-eif.sh with continuation lines joined and comment lines dropped. */
export function scriptLines(sh: string): string[] {
  const out: string[] = [];
  let acc = '';
  for (const line of sh.split('\n')) {
    if (acc === '' && /^\s*#/.test(line)) continue;
    if (/\\$/.test(line)) {
      acc += line.slice(0, -1) + ' ';
      continue;
    }
    out.push(acc + line);
    acc = '';
  }
  return out;
}
