//! The MessagePack wire format, as far as `ShmStore`'s items use it: nil, booleans, integers,
//! `float 64`, str, bin, arrays and maps (the format's specification:
//! <https://github.com/msgpack/msgpack/blob/master/spec.md>).
//!
//! The writer always picks the shortest encoding, as every MessagePack encoder does; the reader
//! takes any valid encoding of a value. Bytes read come from the segment, which any process may
//! have written: the reader bounds-checks every length and returns `None` on anything it does
//! not expect, never panics.

/// Appends MessagePack values to a buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn nil(&mut self) {
        self.0.push(0xc0);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.0.push(if value { 0xc3 } else { 0xc2 });
    }

    pub(crate) fn int(&mut self, value: i64) {
        match u64::try_from(value) {
            Ok(unsigned) => self.uint(unsigned),
            Err(_) => self.negative(value),
        }
    }

    pub(crate) fn uint(&mut self, value: u64) {
        if value < 0x80 {
            self.0.push(value as u8); // positive fixint
        } else if let Ok(v) = u8::try_from(value) {
            self.marked(0xcc, &[v]);
        } else if let Ok(v) = u16::try_from(value) {
            self.marked(0xcd, &v.to_be_bytes());
        } else if let Ok(v) = u32::try_from(value) {
            self.marked(0xce, &v.to_be_bytes());
        } else {
            self.marked(0xcf, &value.to_be_bytes());
        }
    }

    fn negative(&mut self, value: i64) {
        if value >= -32 {
            self.0.push(value as u8); // negative fixint: the two's complement byte
        } else if let Ok(v) = i8::try_from(value) {
            self.marked(0xd0, &v.to_be_bytes());
        } else if let Ok(v) = i16::try_from(value) {
            self.marked(0xd1, &v.to_be_bytes());
        } else if let Ok(v) = i32::try_from(value) {
            self.marked(0xd2, &v.to_be_bytes());
        } else {
            self.marked(0xd3, &value.to_be_bytes());
        }
    }

    /// A marker byte and what follows it.
    fn marked(&mut self, marker: u8, bytes: &[u8]) {
        self.0.push(marker);
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn f64(&mut self, value: f64) {
        self.marked(0xcb, &value.to_be_bytes());
    }

    /// A str header and the text. `None` if it is longer than MessagePack allows (4 GiB).
    pub(crate) fn str(&mut self, text: &str) -> Option<()> {
        let len = u32::try_from(text.len()).ok()?;
        if len < 32 {
            self.0.push(0xa0 | len as u8);
        } else {
            self.header(len, [0xd9, 0xda, 0xdb]);
        }
        self.0.extend_from_slice(text.as_bytes());
        Some(())
    }

    /// A bin header and the bytes. `None` if they are longer than MessagePack allows.
    pub(crate) fn bin(&mut self, bytes: &[u8]) -> Option<()> {
        let len = u32::try_from(bytes.len()).ok()?;
        self.header(len, [0xc4, 0xc5, 0xc6]);
        self.0.extend_from_slice(bytes);
        Some(())
    }

    pub(crate) fn array(&mut self, len: usize) -> Option<()> {
        self.collection(len, 0x90, [0xdc, 0xdd])
    }

    pub(crate) fn map(&mut self, len: usize) -> Option<()> {
        self.collection(len, 0x80, [0xde, 0xdf])
    }

    fn collection(&mut self, len: usize, fix: u8, [m16, m32]: [u8; 2]) -> Option<()> {
        let len = u32::try_from(len).ok()?;
        if len < 16 {
            self.0.push(fix | len as u8);
        } else if let Ok(v) = u16::try_from(len) {
            self.marked(m16, &v.to_be_bytes());
        } else {
            self.marked(m32, &len.to_be_bytes());
        }
        Some(())
    }

    /// An 8-, 16- or 32-bit length header (str 8/16/32, bin 8/16/32).
    fn header(&mut self, len: u32, [m8, m16, m32]: [u8; 3]) {
        if let Ok(v) = u8::try_from(len) {
            self.marked(m8, &[v]);
        } else if let Ok(v) = u16::try_from(len) {
            self.marked(m16, &v.to_be_bytes());
        } else {
            self.marked(m32, &len.to_be_bytes());
        }
    }
}

/// Reads MessagePack values from untrusted bytes, front to back.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// Whether every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.first().copied()
    }

    /// Any integer encoding that fits an `i64`.
    pub(crate) fn int(&mut self) -> Option<i64> {
        let marker = self.byte()?;
        Some(match marker {
            0x00..=0x7f => i64::from(marker),
            0xe0..=0xff => i64::from(marker as i8),
            0xcc => i64::from(self.byte()?),
            0xcd => i64::from(u16::from_be_bytes(self.be()?)),
            0xce => i64::from(u32::from_be_bytes(self.be()?)),
            0xcf => i64::try_from(u64::from_be_bytes(self.be()?)).ok()?,
            0xd0 => i64::from(i8::from_be_bytes(self.be()?)),
            0xd1 => i64::from(i16::from_be_bytes(self.be()?)),
            0xd2 => i64::from(i32::from_be_bytes(self.be()?)),
            0xd3 => i64::from_be_bytes(self.be()?),
            _ => return None,
        })
    }

    /// An 8-, 16- or 32-bit length after one of the markers `m8`, `m16`, `m32`.
    fn sized(&mut self, marker: u8, [m8, m16, m32]: [u8; 3]) -> Option<usize> {
        let len = if marker == m8 {
            u32::from(self.byte()?)
        } else if marker == m16 {
            u32::from(u16::from_be_bytes(self.be()?))
        } else if marker == m32 {
            u32::from_be_bytes(self.be()?)
        } else {
            return None;
        };
        usize::try_from(len).ok()
    }

    /// A str, which must be UTF-8.
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        let marker = self.byte()?;
        let len = if marker & 0xe0 == 0xa0 {
            usize::from(marker & 0x1f)
        } else {
            self.sized(marker, [0xd9, 0xda, 0xdb])?
        };
        std::str::from_utf8(self.take(len)?).ok()
    }

    pub(crate) fn bin(&mut self) -> Option<&'a [u8]> {
        let marker = self.byte()?;
        let len = self.sized(marker, [0xc4, 0xc5, 0xc6])?;
        self.take(len)
    }

    /// nil (`Some(None)`) or a bin.
    pub(crate) fn nil_or_bin(&mut self) -> Option<Option<&'a [u8]>> {
        if self.peek()? == 0xc0 {
            self.take(1)?;
            return Some(None);
        }
        self.bin().map(Some)
    }

    /// An array header: the number of elements.
    pub(crate) fn array(&mut self) -> Option<usize> {
        let marker = self.byte()?;
        if marker & 0xf0 == 0x90 {
            return Some(usize::from(marker & 0x0f));
        }
        let len = match marker {
            0xdc => u32::from(u16::from_be_bytes(self.be()?)),
            0xdd => u32::from_be_bytes(self.be()?),
            _ => return None,
        };
        usize::try_from(len).ok()
    }
}
