//! Per-table row counts read off a dump as it streams past, without a query: in a plain dump
//! the lines between `COPY … FROM stdin;` and `\.`, in a custom archive (written with `-Z0`,
//! uncompressed) the lines of each `TABLE DATA` block, found through the archive's table of
//! contents. A stream this cannot follow gives no counts (never a wrong one, never a failed
//! backup): the format reader gives up and says so.

use super::catalog::source::TableRows;
use std::collections::BTreeMap;

/// Counts rows in the bytes of one dump, fed chunk by chunk in order.
pub enum RowCounter {
    Plain(PlainCounter),
    Custom(Box<CustomCounter>),
}

impl RowCounter {
    pub fn plain() -> Self {
        RowCounter::Plain(PlainCounter::default())
    }

    pub fn custom() -> Self {
        RowCounter::Custom(Box::default())
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            RowCounter::Plain(c) => c.feed(chunk),
            RowCounter::Custom(c) => c.feed(chunk),
        }
    }

    /// The counts, or `None` when the stream could not be followed to its end.
    pub fn finish(self) -> Option<TableRows> {
        match self {
            RowCounter::Plain(c) => c.finish(),
            RowCounter::Custom(c) => c.finish(),
        }
    }
}

/// The longest line start the plain reader keeps to recognise `COPY … FROM stdin;`.
const MAX_COPY_LINE: usize = 64 * 1024;

/// A plain (SQL) dump: COPY blocks, one row per line, ended by `\.`.
#[derive(Default)]
pub struct PlainCounter {
    /// The start of the current line (up to [`MAX_COPY_LINE`] bytes).
    line: Vec<u8>,
    /// The current line is longer than kept.
    long: bool,
    /// Inside a COPY block: the table and its rows so far.
    copying: Option<(String, u64)>,
    rows: TableRows,
    broken: bool,
    /// Where the SQL between COPY blocks is: a line that starts inside a string, quoted
    /// identifier, dollar-quoted body or comment is no COPY statement, whatever it reads.
    sql: SqlLexer,
    /// The current line started inside such text.
    line_quoted: bool,
}

/// Just enough of PostgreSQL's lexer to know whether a byte of pg_dump's SQL is inside a
/// string ('…', E'…'), a quoted identifier, a dollar-quoted body or a `--` comment.
#[derive(Default)]
struct SqlLexer {
    state: Lex,
    /// The two bytes before the current one (for `--`, `E'` and where `$` may open a quote).
    prev: [u8; 2],
}

#[derive(Default, PartialEq)]
enum Lex {
    #[default]
    Code,
    Str,
    /// An E'…' string; `escaped`: the byte after a backslash.
    EStr {
        escaped: bool,
    },
    /// Just after the closing quote of an E'…' string: another quote continues it ('').
    EStrEnd,
    Ident,
    Comment,
    /// `$tag` read so far after a `$` that may open a dollar quote.
    DollarOpen(Vec<u8>),
    /// Inside `$tag$…`: the closing `$tag$` and how much of it was just seen.
    Dollar(Vec<u8>, usize),
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl SqlLexer {
    fn in_code(&self) -> bool {
        self.state == Lex::Code
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
            self.prev = [self.prev[1], b];
        }
    }

    fn byte(&mut self, b: u8) {
        let state = std::mem::take(&mut self.state);
        self.state = match state {
            Lex::Code => self.code(b),
            Lex::Str => {
                if b == b'\'' {
                    Lex::Code
                } else {
                    Lex::Str
                }
            }
            Lex::EStr { escaped: true } => Lex::EStr { escaped: false },
            Lex::EStr { escaped: false } => match b {
                b'\\' => Lex::EStr { escaped: true },
                b'\'' => Lex::EStrEnd,
                _ => Lex::EStr { escaped: false },
            },
            Lex::EStrEnd if b == b'\'' => Lex::EStr { escaped: false },
            Lex::EStrEnd => self.code(b),
            Lex::Ident => {
                if b == b'"' {
                    Lex::Code
                } else {
                    Lex::Ident
                }
            }
            Lex::Comment => {
                if b == b'\n' {
                    Lex::Code
                } else {
                    Lex::Comment
                }
            }
            Lex::DollarOpen(mut tag) => {
                let first = tag.len() == 1;
                if b == b'$' {
                    tag.push(b);
                    Lex::Dollar(tag, 0)
                } else if (b.is_ascii_alphabetic() || b == b'_' || b >= 0x80)
                    || (!first && b.is_ascii_digit())
                {
                    tag.push(b);
                    Lex::DollarOpen(tag)
                } else {
                    // `$1`, or a `$` that opens nothing: this byte is code.
                    self.code(b)
                }
            }
            Lex::Dollar(close, seen) => {
                let seen = if close[seen] == b {
                    seen + 1
                } else if b == b'$' {
                    1
                } else {
                    0
                };
                if seen == close.len() {
                    Lex::Code
                } else {
                    Lex::Dollar(close, seen)
                }
            }
        };
    }

    fn code(&self, b: u8) -> Lex {
        let [p2, p1] = self.prev;
        match b {
            b'\'' if (p1 == b'E' || p1 == b'e') && !is_ident_byte(p2) => {
                Lex::EStr { escaped: false }
            }
            b'\'' => Lex::Str,
            b'"' => Lex::Ident,
            b'-' if p1 == b'-' => Lex::Comment,
            b'$' if !is_ident_byte(p1) => Lex::DollarOpen(vec![b'$']),
            _ => Lex::Code,
        }
    }
}

impl PlainCounter {
    fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    self.take(&chunk[..i]);
                    self.end_line();
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.take(chunk);
                    chunk = &[];
                }
            }
        }
    }

    fn take(&mut self, part: &[u8]) {
        if self.copying.is_none() {
            self.sql.feed(part);
        }
        let room = MAX_COPY_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.long |= part.len() > room;
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let long = std::mem::replace(&mut self.long, false);
        match &mut self.copying {
            Some((table, n)) => {
                if !long && line == b"\\." {
                    let (table, n) = (std::mem::take(table), *n);
                    *self.rows.entry(table).or_default() += n;
                    self.copying = None;
                } else {
                    *n += 1;
                }
            }
            None if !long && !self.line_quoted => {
                if let Some(table) = copy_table(&line) {
                    self.copying = Some((table, 0));
                    self.sql = SqlLexer::default();
                }
            }
            None => {}
        }
        if self.copying.is_none() {
            self.sql.feed(b"\n");
        }
        self.line_quoted = !self.sql.in_code();
    }

    fn finish(mut self) -> Option<TableRows> {
        if !self.line.is_empty() || self.long {
            self.end_line();
        }
        (!self.broken && self.copying.is_none()).then_some(self.rows)
    }
}

/// The table of a `COPY schema.table (cols) FROM stdin;` line, as [`qualified`] names it.
fn copy_table(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("COPY ")?;
    if !rest.ends_with(" FROM stdin;") {
        return None;
    }
    let (schema, rest) = identifier(rest)?;
    let (table, _) = identifier(rest.strip_prefix('.')?)?;
    Some(qualified(&schema, &table))
}

/// An identifier at the start of `s` as pg_dump writes it (bare, or "quoted" with ""
/// doubled), unquoted, and the rest.
fn identifier(s: &str) -> Option<(String, &str)> {
    if s.starts_with('"') {
        return super::pg_text::unquote_ident(s);
    }
    let end = s.find(['.', ' ', '(']).unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_string(), &s[end..]))
}

/// Block types of a custom archive's data section.
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
/// Bytes of a table's data kept to recognise its `\.` trailer.
const TAIL: usize = 5;
/// Most bytes of header and table of contents kept while they are read.
const MAX_TOC: usize = 256 << 20;

/// Where the custom reader is.
#[derive(Default)]
enum Stage {
    /// Collecting header and TOC bytes until they parse.
    #[default]
    Toc,
    /// Expecting a block type byte.
    Block,
    /// Reading a block: its kind, the table (for data), how many bytes of the current chunk
    /// remain, and what comes next.
    Chunk(Chunk),
    Broken,
}

struct Chunk {
    table: Option<String>,
    blobs: bool,
    need: Need,
    /// Lines of the table's data so far, and its last bytes: pg_dump ends each table's COPY
    /// data with `\.` and two empty lines, which are no rows.
    lines: u64,
    tail: Vec<u8>,
}

enum Need {
    /// Bytes of an int (sign byte + int size) still to read, and those read.
    Int(Vec<u8>, IntFor),
    /// Data bytes still to skip or count.
    Data(u64),
}

#[derive(Clone, Copy, PartialEq)]
enum IntFor {
    DumpId,
    Length,
    BlobOid,
}

/// A custom-format (`-Fc -Z0`) archive read as it streams past.
#[derive(Default)]
pub struct CustomCounter {
    stage: Stage,
    buf: Vec<u8>,
    int_size: usize,
    /// dumpId → `schema.table`, for the TABLE DATA entries.
    tables: BTreeMap<i64, String>,
    rows: TableRows,
}

impl CustomCounter {
    fn feed(&mut self, chunk: &[u8]) {
        match self.stage {
            Stage::Broken => {}
            Stage::Toc => {
                self.buf.extend_from_slice(chunk);
                match parse_toc(&self.buf) {
                    Toc::Done {
                        used,
                        int_size,
                        tables,
                    } => {
                        self.int_size = int_size;
                        self.tables = tables;
                        let rest = self.buf.split_off(used);
                        self.buf.clear();
                        self.stage = Stage::Block;
                        self.blocks(&rest);
                    }
                    Toc::More if self.buf.len() <= MAX_TOC => {}
                    _ => self.stage = Stage::Broken,
                }
            }
            _ => self.blocks(chunk),
        }
    }

    /// The data section: block after block, chunk after chunk.
    fn blocks(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let stage = std::mem::replace(&mut self.stage, Stage::Broken);
            self.stage = match stage {
                Stage::Block => {
                    let kind = bytes[0];
                    bytes = &bytes[1..];
                    match kind {
                        BLK_DATA | BLK_BLOBS => Stage::Chunk(Chunk {
                            table: None,
                            blobs: kind == BLK_BLOBS,
                            need: Need::Int(Vec::new(), IntFor::DumpId),
                            lines: 0,
                            tail: Vec::new(),
                        }),
                        _ => Stage::Broken,
                    }
                }
                Stage::Chunk(mut c) => match &mut c.need {
                    Need::Data(left) => {
                        let n = (*left).min(bytes.len() as u64) as usize;
                        if c.table.is_some() {
                            let data = &bytes[..n];
                            c.lines += memchr::memchr_iter(b'\n', data).count() as u64;
                            c.tail
                                .extend_from_slice(&data[data.len().saturating_sub(TAIL)..]);
                            let cut = c.tail.len().saturating_sub(TAIL);
                            c.tail.drain(..cut);
                        }
                        *left -= n as u64;
                        bytes = &bytes[n..];
                        if *left == 0 {
                            c.need = Need::Int(Vec::new(), IntFor::Length);
                        }
                        Stage::Chunk(c)
                    }
                    Need::Int(got, what) => {
                        let want = 1 + self.int_size;
                        let n = (want - got.len()).min(bytes.len());
                        got.extend_from_slice(&bytes[..n]);
                        bytes = &bytes[n..];
                        if got.len() < want {
                            Stage::Chunk(c)
                        } else {
                            let v = int_value(got);
                            let what = *what;
                            self.after_int(c, what, v)
                        }
                    }
                },
                other => other,
            };
            if matches!(self.stage, Stage::Broken) {
                return;
            }
        }
    }

    /// What an int just read means: a block's dump id, a chunk length (0 ends the data of a
    /// table or of one large object), or a large object's oid (0 ends the blobs block).
    fn after_int(&mut self, mut c: Chunk, what: IntFor, v: i64) -> Stage {
        match what {
            IntFor::DumpId => {
                c.table = if c.blobs {
                    None
                } else {
                    self.tables.get(&v).cloned()
                };
                if let Some(t) = &c.table {
                    self.rows.entry(t.clone()).or_default();
                }
                c.need = Need::Int(
                    Vec::new(),
                    if c.blobs {
                        IntFor::BlobOid
                    } else {
                        IntFor::Length
                    },
                );
                Stage::Chunk(c)
            }
            IntFor::BlobOid if v == 0 => Stage::Block,
            IntFor::BlobOid => {
                c.need = Need::Int(Vec::new(), IntFor::Length);
                Stage::Chunk(c)
            }
            IntFor::Length if v < 0 => Stage::Broken,
            IntFor::Length if v == 0 && c.blobs => {
                c.need = Need::Int(Vec::new(), IntFor::BlobOid);
                Stage::Chunk(c)
            }
            IntFor::Length if v == 0 => {
                if let Some(t) = &c.table {
                    let trailer = if c.tail.ends_with(b"\\.\n\n\n") {
                        3
                    } else if c.tail.ends_with(b"\\.\n") {
                        1
                    } else {
                        0
                    };
                    *self.rows.entry(t.clone()).or_default() += c.lines.saturating_sub(trailer);
                }
                Stage::Block
            }
            IntFor::Length => {
                c.need = Need::Data(v as u64);
                Stage::Chunk(c)
            }
        }
    }

    fn finish(self) -> Option<TableRows> {
        matches!(self.stage, Stage::Block).then_some(self.rows)
    }
}

fn int_value(b: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for (i, byte) in b[1..].iter().enumerate().take(8) {
        v |= i64::from(*byte) << (8 * i);
    }
    if b[0] != 0 {
        -v
    } else {
        v
    }
}

/// What reading the header and TOC from the bytes so far gave.
enum Toc {
    More,
    Done {
        used: usize,
        int_size: usize,
        tables: BTreeMap<i64, String>,
    },
    Unknown,
}

/// A cursor over the header and TOC bytes; `None` from a read means "not enough bytes yet".
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
    int_size: usize,
}

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn int(&mut self) -> Option<i64> {
        let n = 1 + self.int_size;
        self.bytes(n).map(int_value)
    }

    fn string(&mut self) -> Option<Option<String>> {
        let len = self.int()?;
        if len < 0 {
            return Some(None);
        }
        let s = self.bytes(len as usize)?;
        Some(Some(String::from_utf8_lossy(s).into_owned()))
    }
}

/// Parses the archive header and table of contents (archive versions 1.12 to 1.16, pg_dump 11
/// to 17).
fn parse_toc(b: &[u8]) -> Toc {
    if b.len() < 5 {
        return Toc::More;
    }
    if &b[..5] != b"PGDMP" {
        return Toc::Unknown;
    }
    match toc_entries(b) {
        Ok(Some((used, int_size, tables))) => Toc::Done {
            used,
            int_size,
            tables,
        },
        Ok(None) => Toc::More,
        Err(()) => Toc::Unknown,
    }
}

type Parsed = (usize, usize, BTreeMap<i64, String>);

fn toc_entries(b: &[u8]) -> Result<Option<Parsed>, ()> {
    let mut c = Cursor {
        b,
        at: 5,
        int_size: 4,
    };
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    let (major, minor) = (need!(c.byte()), need!(c.byte()));
    let _rev = need!(c.byte());
    let version = (major, minor);
    if !((1, 12)..=(1, 16)).contains(&version) {
        return Err(());
    }
    c.int_size = need!(c.byte()) as usize;
    let off_size = need!(c.byte()) as usize;
    if !(1..=8).contains(&c.int_size) || !(1..=16).contains(&off_size) {
        return Err(());
    }
    let _format = need!(c.byte());
    if version >= (1, 15) {
        let _algorithm = need!(c.byte());
    } else {
        let _level = need!(c.int());
    }
    for _ in 0..7 {
        need!(c.int()); // creation time
    }
    for _ in 0..3 {
        need!(c.string()); // database name, server and pg_dump versions
    }
    let count = need!(c.int());
    if count < 0 {
        return Err(());
    }
    let mut tables = BTreeMap::new();
    for _ in 0..count {
        let dump_id = need!(c.int());
        let _has_data = need!(c.int());
        let _table_oid = need!(c.string());
        let _oid = need!(c.string());
        let tag = need!(c.string());
        let desc = need!(c.string());
        let _section = need!(c.int());
        for _ in 0..3 {
            need!(c.string()); // definition, drop statement, copy statement
        }
        let namespace = need!(c.string());
        let _tablespace = need!(c.string());
        if version >= (1, 14) {
            need!(c.string()); // table access method
        }
        if version >= (1, 16) {
            need!(c.int()); // relkind
        }
        let _owner = need!(c.string());
        let _with_oids = need!(c.string());
        while need!(c.string()).is_some() {} // dependencies, ended by NULL
        need!(c.bytes(1 + off_size)); // data offset
        if desc.as_deref() == Some("TABLE DATA") {
            if let (Some(ns), Some(t)) = (namespace, tag) {
                tables.insert(dump_id, qualified(&ns, &t));
            }
        }
    }
    Ok(Some((c.at, c.int_size, tables)))
}

/// Whether `key` is exactly the form [`qualified`] writes (two double-quoted names, inner
/// quotes doubled, a dot between): only such a key is put into SQL.
pub fn is_qualified(key: &str) -> bool {
    let Some((schema, rest)) = identifier(key) else {
        return false;
    };
    if !key.starts_with('"') {
        return false;
    }
    let Some(rest) = rest.strip_prefix('.') else {
        return false;
    };
    if !rest.starts_with('"') {
        return false;
    }
    matches!(identifier(rest), Some((table, "")) if qualified(&schema, &table) == key)
}

/// `"schema"."table"`, both parts always quoted: the same key in both formats, and valid SQL
/// for a count on a restored copy.
pub fn qualified(schema: &str, table: &str) -> String {
    let q = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    format!("{}.{}", q(schema), q(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(chunks: &[&[u8]]) -> Option<TableRows> {
        let mut c = RowCounter::plain();
        for ch in chunks {
            c.feed(ch);
        }
        c.finish()
    }

    /// The counts of `dump` whole, and split in two at every byte.
    fn counts_at_every_cut(dump: &[u8], want: &TableRows) {
        assert_eq!(plain(&[dump]).as_ref(), Some(want));
        for cut in 1..dump.len() {
            assert_eq!(
                plain(&[&dump[..cut], &dump[cut..]]).as_ref(),
                Some(want),
                "{cut}"
            );
        }
    }

    #[test]
    fn plain_copy_blocks_are_counted_across_chunk_edges() {
        let dump = b"SET x = 1;\nCOPY public.t (a, b) FROM stdin;\n1\tx\n2\ty\n\\.\n\nCOPY app.\"Odd\" (v) FROM stdin;\n\\.\nCOPY public.t (a, b) FROM stdin;\n3\tz\n\\.\n";
        let want: TableRows = [
            ("\"app\".\"Odd\"".to_string(), 0),
            ("\"public\".\"t\"".to_string(), 3),
        ]
        .into_iter()
        .collect();
        counts_at_every_cut(dump, &want);
    }

    #[test]
    fn a_copy_block_cut_short_gives_no_counts() {
        assert_eq!(plain(&[b"COPY public.t (a) FROM stdin;\n1\n"]), None);
        // A data line that reads like a terminator only counts as one when it is the whole line.
        let dump = b"COPY public.t (a) FROM stdin;\n\\.x\n\\.\n";
        assert_eq!(plain(&[dump]).unwrap()["\"public\".\"t\""], 1);
    }

    #[test]
    fn a_copy_line_inside_sql_text_is_no_copy_block() {
        // pg_dump writes a multi-line comment, string or function body as it is: a line of
        // it that reads like a COPY statement starts no data block.
        let dump = b"SET standard_conforming_strings = on;\n\
COMMENT ON TABLE public.t IS 'load it with\nCOPY public.t (a) FROM stdin;\nand a backslash \\';\n\
CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $_$SELECT 'x\nCOPY public.t (a) FROM stdin;\n'$_$;\n\
CREATE VIEW public.\"v'\" AS SELECT $1, a$b FROM x; -- it's\n\
SELECT E'\\'', '''';\n\
\n\
COPY public.t (a) FROM stdin;\n1\n2\n\\.\n\n\
COMMENT ON COLUMN public.t.a IS E'it\\'s\nCOPY public.u (a) FROM stdin;\n';\n\
COPY public.u (a) FROM stdin;\n3\n\\.\n";
        let want: TableRows = [
            ("\"public\".\"t\"".to_string(), 2),
            ("\"public\".\"u\"".to_string(), 1),
        ]
        .into_iter()
        .collect();
        counts_at_every_cut(dump, &want);
    }

    #[test]
    fn copy_lines_name_their_table_in_one_form() {
        assert_eq!(
            copy_table(b"COPY public.orders (id) FROM stdin;").unwrap(),
            "\"public\".\"orders\""
        );
        assert_eq!(
            copy_table(b"COPY \"My Schema\".\"a\"\"b\" FROM stdin;").unwrap(),
            "\"My Schema\".\"a\"\"b\""
        );
        assert_eq!(copy_table(b"COPY x TO stdout;"), None);
        assert_eq!(qualified("a\"b", "t"), "\"a\"\"b\".\"t\"");
        assert!(is_qualified("\"a\"\"b\".\"t\""));
        for bad in [
            "public.t",
            "\"public\".t",
            "\"a\".\"t\"; DROP TABLE x",
            "\"a\".\"t\" x",
            "\"a\"\".\"t\"",
            "\"a\"",
        ] {
            assert!(!is_qualified(bad), "{bad}");
        }
    }

    #[test]
    fn something_else_than_an_archive_gives_no_counts() {
        let mut c = RowCounter::custom();
        c.feed(b"PGDMX....");
        assert_eq!(c.finish(), None);
        let mut c = RowCounter::custom();
        c.feed(b"PGD");
        assert_eq!(c.finish(), None);
    }
}
