// A small, strict XML reader for OpenNebula's documents: elements, attributes,
// character data, CDATA, comments, the XML declaration, the five predefined
// entities and numeric character references. DOCTYPE is refused (no entity
// expansion), and any malformation is an error with its line and column,
// because a half-read VM document would put wrong facts in the ledger.

export interface XmlElement {
  name: string;
  attributes: Readonly<Record<string, string>>;
  children: XmlElement[];
  /** Character data (text and CDATA, entities decoded) directly inside the element, concatenated. */
  text: string;
}

export class XmlSyntaxError extends Error {
  override readonly name = 'XmlSyntaxError';
  readonly offset: number;
  readonly line: number;
  readonly column: number;

  constructor(problem: string, input: string, offset: number) {
    const before = input.slice(0, offset);
    const line = before.split('\n').length;
    const column = offset - before.lastIndexOf('\n');
    super(`${problem} at line ${line}, column ${column}`);
    this.offset = offset;
    this.line = line;
    this.column = column;
  }
}

const MAX_DEPTH = 100;
const NAME = /[\p{L}_:][\p{L}\p{N}_.:-]*/uy;
const SPACE = /[ \t\r\n]*/y;
const ENTITY = /&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6}));/y;
const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const FORBIDDEN_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/** Parses a whole document and returns its root element. Throws XmlSyntaxError. */
export function parseXml(input: string): XmlElement {
  let pos = 0;
  function fail(problem: string, at: number = pos): never {
    throw new XmlSyntaxError(problem, input, at);
  }
  const forbidden = FORBIDDEN_CHAR.exec(input);
  if (forbidden !== null) {
    fail(`character U+${forbidden[0].charCodeAt(0).toString(16).padStart(4, '0')} is not allowed in XML`, forbidden.index);
  }

  const readName = (what: string): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(input);
    if (m === null) return fail(pos >= input.length ? `unexpected end of input, expected ${what}` : `expected ${what}`);
    pos = NAME.lastIndex;
    return m[0];
  };
  const skipSpace = (): void => {
    SPACE.lastIndex = pos;
    SPACE.exec(input);
    pos = SPACE.lastIndex;
  };
  const decode = (raw: string, at: number): string => {
    let out = '';
    let i = 0;
    for (let amp = raw.indexOf('&'); amp !== -1; amp = raw.indexOf('&', i)) {
      out += raw.slice(i, amp);
      ENTITY.lastIndex = amp;
      const m = ENTITY.exec(raw);
      if (m === null) return fail('bad entity or stray "&"', at + amp);
      const [, named, dec, hex] = m;
      if (named !== undefined) {
        out += PREDEFINED[named] ?? '';
      } else {
        const cp = dec !== undefined ? Number(dec) : Number.parseInt(hex ?? '', 16);
        if (!isXmlChar(cp)) return fail(`character reference ${m[0]} is not an XML character`, at + amp);
        out += String.fromCodePoint(cp);
      }
      i = ENTITY.lastIndex;
    }
    return out + raw.slice(i);
  };
  const skipPast = (terminator: string, what: string): number => {
    const end = input.indexOf(terminator, pos);
    if (end === -1) return fail(`unterminated ${what}`);
    pos = end + terminator.length;
    return end;
  };

  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (pos < input.length) {
    const top = stack.at(-1);
    const lt = input.indexOf('<', pos);
    const textEnd = lt === -1 ? input.length : lt;
    if (textEnd > pos) {
      const raw = input.slice(pos, textEnd);
      if (top !== undefined) top.text += decode(raw, pos);
      else if (raw.trim() !== '') fail(root === undefined ? 'text before the root element' : 'text after the root element');
      pos = textEnd;
      continue;
    }
    if (input.startsWith('<!--', pos)) {
      skipPast('-->', 'comment');
    } else if (input.startsWith('<![CDATA[', pos)) {
      if (top === undefined) fail('CDATA outside the root element');
      const start = pos + 9;
      const end = skipPast(']]>', 'CDATA section');
      top.text += input.slice(start, end);
    } else if (input.startsWith('<!', pos)) {
      fail('DOCTYPE and other declarations are not accepted');
    } else if (input.startsWith('<?', pos)) {
      skipPast('?>', 'processing instruction');
    } else if (input.startsWith('</', pos)) {
      const at = pos;
      pos += 2;
      const name = readName('an element name');
      skipSpace();
      if (pos >= input.length) fail(`unexpected end of input inside </${name}>`);
      if (input[pos] !== '>') fail(`expected ">" to end </${name}>`);
      pos += 1;
      const open = stack.pop();
      if (open === undefined) fail(`</${name}> has no matching start tag`, at);
      else if (open.name !== name) fail(`</${name}> does not match <${open.name}>`, at);
    } else {
      pos += 1;
      const element: XmlElement = { name: readName('an element name'), attributes: {}, children: [], text: '' };
      const attributes: Record<string, string> = {};
      let selfClosing = false;
      for (;;) {
        const before = pos;
        skipSpace();
        const hadSpace = pos > before;
        if (input.startsWith('/>', pos)) {
          selfClosing = true;
          pos += 2;
          break;
        }
        if (input[pos] === '>') {
          pos += 1;
          break;
        }
        if (pos >= input.length) fail(`unexpected end of input inside <${element.name}>`);
        if (!hadSpace) fail(`expected whitespace, ">" or "/>" in <${element.name}>`);
        const attr = readName('an attribute name');
        skipSpace();
        if (input[pos] !== '=') fail(`expected "=" after attribute ${attr}`);
        pos += 1;
        skipSpace();
        const quote = input[pos];
        if (quote !== '"' && quote !== "'") fail(`expected a quoted value for attribute ${attr}`);
        const start = pos + 1;
        pos = start;
        const end = skipPast(quote, `value of attribute ${attr}`);
        const raw = input.slice(start, end);
        if (raw.includes('<')) fail(`"<" in the value of attribute ${attr}`, start);
        if (Object.hasOwn(attributes, attr)) fail(`duplicate attribute ${attr}`, start);
        attributes[attr] = decode(raw, start);
      }
      element.attributes = attributes;
      if (top !== undefined) top.children.push(element);
      else if (root !== undefined) fail('more than one root element');
      else root = element;
      if (!selfClosing) {
        if (stack.length >= MAX_DEPTH) fail(`elements nested deeper than ${MAX_DEPTH}`);
        stack.push(element);
      }
    }
  }
  const unclosed = stack.at(-1);
  if (unclosed !== undefined) fail(`unexpected end of input: <${unclosed.name}> is not closed`, input.length);
  if (root === undefined) return fail('no root element', input.length);
  return root;
}

/** Child elements with that name, in document order. */
export function childrenNamed(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((child) => child.name === name);
}

export function firstChild(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((child) => child.name === name);
}

/**
 * The element's leaf children (no child elements of their own) as name →
 * trimmed text; the first occurrence wins. Containers are left out.
 */
export function leafValues(element: XmlElement): Record<string, string> {
  const values: Record<string, string> = {};
  for (const child of element.children) {
    if (child.children.length === 0 && !Object.hasOwn(values, child.name)) values[child.name] = child.text.trim();
  }
  return values;
}
