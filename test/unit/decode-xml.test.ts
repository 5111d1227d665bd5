import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { childrenNamed, firstChild, leafValues, parseXml, XmlSyntaxError } from '../../operator/intake/decode/xml.ts';

describe('parseXml reads what OpenNebula writes', () => {
  it('elements, nesting, text and empty elements', () => {
    const root = parseXml('<VM>\n  <ID>800</ID>\n  <DEPLOY_ID/>\n  <TEMPLATE><NIC><IP>10.0.0.1</IP></NIC></TEMPLATE>\n</VM>');
    assert.equal(root.name, 'VM');
    assert.deepEqual(leafValues(root), { ID: '800', DEPLOY_ID: '' });
    const nic = firstChild(firstChild(root, 'TEMPLATE') ?? root, 'NIC');
    assert.equal(nic && leafValues(nic)['IP'], '10.0.0.1');
  });

  it('CDATA sections are kept verbatim, entities inside them are not expanded', () => {
    const root = parseXml('<T><REQ><![CDATA[!(PUBLIC_CLOUD = YES) & <x>]]></REQ><A><![CDATA[a]]>&amp;<![CDATA[b]]></A></T>');
    assert.deepEqual(leafValues(root), { REQ: '!(PUBLIC_CLOUD = YES) & <x>', A: 'a&b' });
  });

  it('predefined entities and numeric character references', () => {
    const root = parseXml('<A>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#x1F600;</A>');
    assert.equal(root.text, `&<>"'AB\u{1F600}`);
  });

  it('a raw ">" in text is allowed (the real VM XML has "@>" in requirements)', () => {
    assert.equal(parseXml('<R>("CLUSTERS/ID" @> 0)</R>').text, '("CLUSTERS/ID" @> 0)');
  });

  it('XML declaration, comments and processing instructions are skipped', () => {
    const root = parseXml('<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><A><!-- inside --><B>1</B><?pi x?></A>\n<!-- after -->\n');
    assert.deepEqual(leafValues(root), { B: '1' });
  });

  it('attributes are parsed (single or double quotes, entities decoded)', () => {
    const root = parseXml(`<A x="1" y='&lt;2&gt;'  z = "a b"/>`);
    assert.deepEqual(root.attributes, { x: '1', y: '<2>', z: 'a b' });
  });

  it('repeated children keep document order; leafValues takes the first and skips containers', () => {
    const root = parseXml('<T><NIC><ID>0</ID></NIC><NIC><ID>1</ID></NIC><K>a</K><K>b</K></T>');
    assert.deepEqual(
      childrenNamed(root, 'NIC').map((nic) => leafValues(nic)['ID']),
      ['0', '1'],
    );
    assert.deepEqual(leafValues(root), { K: 'a' });
  });

  it('leaf values are trimmed, raw text is not', () => {
    const root = parseXml('<T><A>  x  </A></T>');
    assert.equal(leafValues(root)['A'], 'x');
    assert.equal(firstChild(root, 'A')?.text, '  x  ');
  });
});

describe('parseXml rejects malformed input with a reason and a position', () => {
  const cases: [string, string, RegExp][] = [
    ['truncated inside an element', '<VM><ID>800</ID><TEMPLATE>', /end of input: <TEMPLATE> is not closed/],
    ['truncated inside a tag', '<VM><ID', /unexpected end of input inside <ID>/],
    ['truncated inside an end tag', '<VM><ID>1</ID', /unexpected end of input inside <\/ID>/],
    ['truncated right after "<"', '<VM><', /unexpected end of input, expected an element name/],
    ['truncated inside a CDATA section', '<A><![CDATA[abc', /unterminated CDATA section/],
    ['truncated inside a comment', '<A><!-- abc', /unterminated comment/],
    ['mismatched end tag', '<A><B></A></B>', /<\/A> does not match <B>/],
    ['end tag without start', '</A>', /<\/A> has no matching start tag/],
    ['two roots', '<A/><B/>', /more than one root element/],
    ['text before the root', 'junk<A/>', /text before the root element/],
    ['text after the root', '<A/>junk', /text after the root element/],
    ['no root at all', '  <!-- only a comment -->  ', /no root element/],
    ['empty input', '', /no root element/],
    ['stray ampersand', '<A>a & b</A>', /bad entity or stray "&"/],
    ['unknown entity', '<A>&nbsp;</A>', /bad entity/],
    ['character reference to NUL', '<A>&#0;</A>', /not an XML character/],
    ['control character', '<A>\u0001</A>', /U\+0001 is not allowed/],
    ['DOCTYPE (entity expansion) refused', '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', /DOCTYPE/],
    ['duplicate attribute', '<A x="1" x="2"/>', /duplicate attribute x/],
    ['unquoted attribute', '<A x=1/>', /quoted value/],
    ['attributes not separated', '<A x="1"y="2"/>', /expected whitespace/],
    ['"<" in an attribute value', '<A x="<"/>', /"<" in the value/],
    ['bad element name', '<1A/>', /expected an element name/],
  ];
  for (const [what, input, message] of cases) {
    it(what, () => {
      assert.throws(
        () => parseXml(input),
        (err: unknown) => {
          assert.ok(err instanceof XmlSyntaxError, `not an XmlSyntaxError: ${String(err)}`);
          assert.match(err.message, message);
          assert.match(err.message, /at line \d+, column \d+$/);
          return true;
        },
      );
    });
  }

  it('reports line and column of the problem', () => {
    try {
      parseXml('<A>\n  <B>\n  </C>\n</A>');
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof XmlSyntaxError);
      assert.equal(err.line, 3);
      assert.equal(err.column, 3);
    }
  });

  it('refuses absurd nesting instead of recursing', () => {
    assert.throws(() => parseXml('<a>'.repeat(200) + '</a>'.repeat(200)), /nested deeper than/);
  });
});
