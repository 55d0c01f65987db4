//! A small XML writer for S3 responses (escaping via quick-xml) and a reader for request
//! bodies (CompleteMultipartUpload, Delete, CreateBucketConfiguration, ACLs).

use quick_xml::escape::escape;

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

/// A parsed XML element tree: enough for the small documents S3 requests carry.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document; `None` when it is not well-formed.
pub fn parse(input: &[u8]) -> Option<Element> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(input);
    // No trimming: a key of " " must stay one space. Whitespace between elements only lands
    // in container elements' text, which nothing reads.
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) => stack.push(Element {
                name: local(e.name().as_ref()),
                ..Default::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: local(e.name().as_ref()),
                    ..Default::default()
                };
                stack.last_mut()?.children.push(el);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.unescape().ok()?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(std::str::from_utf8(&t).ok()?);
                }
            }
            Event::End(_) => {
                let done = stack.pop()?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Some(done),
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
        assert_eq!(doc.name, "Delete");
        assert_eq!(doc.child("Object").unwrap().child_text("Key"), Some("a&b"));
        assert!(parse(b"<a><b></a>").is_none());
        let mut w = Writer::new();
        w.elem("Key", "<&>");
        assert!(w.finish().ends_with("<Key>&lt;&amp;&gt;</Key>"));
    }
}
