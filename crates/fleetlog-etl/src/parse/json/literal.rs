//! JSON messages read straight from their string literal in the envelope, where each of their
//! quotes is spelled `\"`, without decoding the literal first. Only the common case is taken: strings
//! with no escapes of their own, whitespace that is spaces or escaped newlines, tabs and carriage
//! returns. Anything else is left to the decoding path ([`super::message`]), which then decides, so this
//! reader only ever accepts messages that serde_json accepts too.

use crate::scan::first;

/// Deeper nesting is left to serde_json, which refuses beyond 128 levels.
const MAX_DEPTH: usize = 100;

/// The top-level members of a JSON object message, each made by `member` of its name's content and
/// its value's JSON text, both as the literal spells them. `None` when the literal is not such an
/// object in the common case.
pub(super) fn top_level_members<'a, T>(
    literal: &'a str,
    mut member: impl FnMut(&'a str, &'a str) -> T,
) -> Option<Vec<T>> {
    let mut reader = Reader { text: literal, at: 0 };
    reader.skip_whitespace();
    if reader.peek() != Some(b'{') {
        return None;
    }
    let mut members = Vec::with_capacity(8);
    reader.object(1, |name, value| members.push(member(name, value)))?;
    reader.skip_whitespace();
    (reader.at == literal.len()).then_some(members)
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// JSON whitespace: spaces, and newlines, tabs and carriage returns as the literal escapes them.
    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(self.at) {
                Some(b' ') => self.at += 1,
                Some(b'\\') if matches!(bytes.get(self.at + 1), Some(b'n' | b't' | b'r')) => self.at += 2,
                _ => return,
            }
        }
    }

    /// A string, spelled `\"…\"`, whose content has no escapes: returns the content.
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at..self.at + 2) != Some(b"\\\"") {
            return None;
        }
        let start = self.at + 2;
        // Names and values are short: a word at a time, not a call to memchr.
        let end = first(bytes, start, b'\\')?;
        // Any other escape is the string's own (or a character the literal escapes): not taken here.
        if bytes.get(end + 1) != Some(&b'"') {
            return None;
        }
        self.at = end + 2;
        Some(&self.text[start..end])
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'\\' => self.string().map(drop),
            b'{' => self.object(depth + 1, |_, _| {}),
            b'[' => self.array(depth + 1),
            b't' => self.word("true"),
            b'f' => self.word("false"),
            b'n' => self.word("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object; `member` gets each member's name and value text.
    fn object(&mut self, depth: usize, mut member: impl FnMut(&'a str, &'a str)) -> Option<()> {
        self.items(depth, b'{', b'}', |reader| {
            let name = reader.string()?;
            reader.skip_whitespace();
            reader.expect(b':')?;
            reader.skip_whitespace();
            let start = reader.at;
            reader.value(depth)?;
            member(name, &reader.text[start..reader.at]);
            Some(())
        })
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.items(depth, b'[', b']', |reader| reader.value(depth))
    }

    /// `open`, comma-separated items each read by `item`, `close`.
    fn items(
        &mut self,
        depth: usize,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(open)?;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => self.skip_whitespace(),
                byte if byte == close => return Some(()),
                _ => return None,
            }
        }
    }

    fn word(&mut self, word: &str) -> Option<()> {
        self.text[self.at..].starts_with(word).then(|| self.at += word.len())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, within f64's range as serde_json
    /// requires.
    fn number(&mut self) -> Option<()> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digit()?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digit()?;
            self.digits();
            return self.finite(start);
        }
        // Only an exponent or hundreds of digits reach past f64.
        if self.at - start > 300 { self.finite(start) } else { Some(()) }
    }

    fn finite(&self, start: usize) -> Option<()> {
        self.text[start..self.at].parse::<f64>().ok().filter(|n| n.is_finite()).map(drop)
    }

    fn digit(&mut self) -> Option<()> {
        self.next().filter(u8::is_ascii_digit).map(drop)
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }
}
