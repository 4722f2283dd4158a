//! Helpers shared by the fuzz targets (each target includes this file with `mod common;`).
#![allow(dead_code)]

/// Reads structured values off the front of a fuzz input; every read succeeds (zeros once the
/// input is exhausted), so any byte string is a valid input.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    /// A length-prefixed (one byte) slice.
    pub fn lv(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Cuts `data` into pieces whose sizes follow a deterministic sequence derived from `seed`
/// (1-byte pieces for seed 0, the whole input for seed 255), exercising every split point.
pub fn splits(data: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 255 || data.is_empty() {
        return vec![data];
    }
    let modulus = usize::from(seed) * 3 + 1;
    let mut out = Vec::new();
    let mut i = 0;
    let mut step = usize::from(seed % 7) + 1;
    while i < data.len() {
        let end = (i + step).min(data.len());
        out.push(&data[i..end]);
        i = end;
        step = (step * 7 + usize::from(seed)) % modulus + 1;
    }
    out
}
