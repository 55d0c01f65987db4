//! A small XML writer for S3 responses and a bounded reader for request bodies
//! (CompleteMultipartUpload, Delete, CreateBucketConfiguration, ACLs).

/// Escapes text for element content so that any string stays well-formed XML 1.0 and reads
/// back as written: markup characters become entities, CR a character reference (a literal
/// CR would be normalised away by the reader), and the few characters XML 1.0 cannot carry
/// at all (C0 controls other than TAB, LF and CR; U+FFFE, U+FFFF) U+FFFD. Keys holding those
/// are refused at write (`valid_key`), so only names from older stores can meet the last rule.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let special = |c: char| matches!(c, '<' | '>' | '&' | '"' | '\'' | '\r') || !xml_char(c);
    if !s.chars().any(special) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether XML 1.0 can carry `c` (its `Char` production; Rust strings hold no surrogates).
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        }
    }

    pub fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        if matches!(
            name,
            "ListAllMyBucketsResult"
                | "ListBucketResult"
                | "CopyObjectResult"
                | "InitiateMultipartUploadResult"
                | "CompleteMultipartUploadResult"
                | "ListPartsResult"
                | "ListMultipartUploadsResult"
                | "DeleteResult"
                | "AccessControlPolicy"
                | "LocationConstraint"
                | "CopyPartResult"
        ) {
            self.out
                .push_str(" xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"");
        }
        self.out.push('>');
    }

    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    pub fn elem(&mut self, name: &str, value: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(&escape(value));
        self.close(name);
    }

    /// An `Owner`/`Initiator`-style principal. S3 principals are projects in Glint: the
    /// project id is both the canonical ID and the display name.
    pub fn principal(&mut self, tag: &str, project: &str) {
        self.open(tag);
        self.elem("ID", project);
        self.elem("DisplayName", project);
        self.close(tag);
    }

    pub fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

/// How deep a request document may nest. S3's request documents are at most four levels
/// deep (`Delete/Object/Key`, `AccessControlPolicy/AccessControlList/Grant/Grantee/ID`);
/// anything deeper is refused while reading, before it costs memory or stack.
pub const MAX_DEPTH: usize = 16;
/// How many elements a request document may hold: a CompleteMultipartUpload of 10,000 parts
/// with a checksum each is ~40,000; every element costs ~100 bytes of tree.
pub const MAX_ELEMENTS: usize = 50_000;

/// A parsed request document. Elements live in one flat arena (children by index), so
/// neither building nor dropping a tree recurses, whatever the input.
#[derive(Debug, Default)]
pub struct Document {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<u32>,
}

/// One element of a [`Document`].
#[derive(Clone, Copy)]
pub struct Element<'a> {
    doc: &'a Document,
    idx: usize,
}

impl Document {
    pub fn root(&self) -> Element<'_> {
        Element { doc: self, idx: 0 }
    }
}

impl<'a> Element<'a> {
    fn node(&self) -> &'a Node {
        &self.doc.nodes[self.idx]
    }

    /// The local name (namespace prefix removed).
    pub fn name(&self) -> &'a str {
        &self.node().name
    }

    /// The element's own text (character data and CDATA, unescaped, untrimmed).
    pub fn text(&self) -> &'a str {
        &self.node().text
    }

    pub fn children(&self) -> impl Iterator<Item = Element<'a>> + 'a {
        let doc = self.doc;
        self.node().children.iter().map(move |&i| Element {
            doc,
            idx: i as usize,
        })
    }

    pub fn child(&self, name: &str) -> Option<Element<'a>> {
        self.children().find(|c| c.name() == name)
    }

    pub fn children_named<'n>(&self, name: &'n str) -> impl Iterator<Item = Element<'a>> + 'n
    where
        'a: 'n,
    {
        self.children().filter(move |c| c.name() == name)
    }

    pub fn child_text(&self, name: &str) -> Option<&'a str> {
        self.child(name).map(|c| c.text())
    }
}

/// Parses a request document; `None` when it is not well-formed, nests deeper than
/// [`MAX_DEPTH`] or holds more than [`MAX_ELEMENTS`] elements. Both bounds are enforced
/// while reading. The caller bounds the input's size (`read_small_body`), which bounds
/// every text. quick-xml expands no entities beyond XML's five and character references,
/// so neither entity expansion nor external entities can make the tree larger than that.
pub fn parse(input: &[u8]) -> Option<Document> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(input);
    // No trimming: a key of " " must stay one space. Whitespace between elements only lands
    // in container elements' text, which nothing reads.
    let mut doc = Document::default();
    // Indices of the open elements, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut buf = Vec::new();
    let add = |doc: &mut Document, open: &[usize], name: &[u8]| -> Option<usize> {
        if doc.nodes.len() >= MAX_ELEMENTS || open.len() >= MAX_DEPTH {
            return None;
        }
        let idx = doc.nodes.len();
        doc.nodes.push(Node {
            name: local(name),
            ..Default::default()
        });
        if let Some(&parent) = open.last() {
            doc.nodes[parent].children.push(idx as u32);
        }
        Some(idx)
    };
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) => {
                let idx = add(&mut doc, &open, e.name().as_ref())?;
                open.push(idx);
            }
            Event::Empty(e) => {
                add(&mut doc, &open, e.name().as_ref())?;
                if open.is_empty() {
                    return Some(doc);
                }
            }
            Event::Text(t) => {
                if let Some(&top) = open.last() {
                    doc.nodes[top].text.push_str(&t.unescape().ok()?);
                }
            }
            Event::CData(t) => {
                if let Some(&top) = open.last() {
                    doc.nodes[top].text.push_str(std::str::from_utf8(&t).ok()?);
                }
            }
            Event::End(_) => {
                open.pop()?;
                if open.is_empty() {
                    return Some(doc);
                }
            }
            Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_escapes() {
        let doc = parse(
            b"<Delete xmlns=\"x\"><Object><Key>a&amp;b</Key></Object><Quiet>true</Quiet></Delete>",
        )
        .unwrap();
        let root = doc.root();
        assert_eq!(root.name(), "Delete");
        assert_eq!(root.child("Object").unwrap().child_text("Key"), Some("a&b"));
        assert!(parse(b"<a><b></a>").is_none());
        assert_eq!(parse(b"<a/>").unwrap().root().name(), "a");
        let mut w = Writer::new();
        w.elem("Key", "<&>");
        assert!(w.finish().ends_with("<Key>&lt;&amp;&gt;</Key>"));
    }

    #[test]
    fn any_text_stays_well_formed() {
        let nasty = "a\u{0}b\u{1}c\rd\ne\tf\u{FFFE}g<>&'\"";
        let mut w = Writer::new();
        w.open("R");
        w.elem("Key", nasty);
        w.close("R");
        let doc = parse(w.finish().as_bytes()).expect("well-formed");
        assert_eq!(
            doc.root().child_text("Key"),
            Some("a\u{FFFD}b\u{FFFD}c\rd\ne\tf\u{FFFD}g<>&'\"")
        );
    }

    #[test]
    fn bounds_are_enforced_while_reading() {
        let deep = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_some());
        assert!(parse(deep(MAX_DEPTH + 1).as_bytes()).is_none());
        // The attack of issue 7: 50,000 levels, refused without recursion.
        assert!(parse(deep(50_000).as_bytes()).is_none());
        let wide = |n: usize| format!("<r>{}</r>", "<p/>".repeat(n));
        assert!(parse(wide(MAX_ELEMENTS - 1).as_bytes()).is_some());
        assert!(parse(wide(MAX_ELEMENTS).as_bytes()).is_none());
        assert!(
            parse(b"<a/><b/>").is_some(),
            "trailing content after the root is not read"
        );
    }
}
