//! A strict, incremental reader of the chunked coding (RFC 9112 §7.1),
//! used to pass chunked bodies through unchanged while finding where they
//! end, and to decode them for HTTP/1.0 clients. Sizes are 1*HEXDIG with no
//! overflow; extensions and trailers have limits; lines end in CRLF.

/// Longest chunk extension accepted on one chunk line (hyper: 16 KiB for
/// a whole body).
const MAX_EXT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked body")]
pub(crate) struct ChunkError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size {
        digits: u8,
    },
    /// Whitespace after the size (BWS), before `;`.
    SizeWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer {
        colon: bool,
    },
    TrailerLf,
    EndLf,
    Done,
}

/// The reader's state across reads.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    ext: usize,
    trailers: usize,
    max_trailers: usize,
    /// Chunk data bytes read so far (for `max_body_bytes`).
    data: u64,
}

impl Chunked {
    /// `max_trailers`: bytes of trailer section accepted.
    pub fn new(max_trailers: usize) -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            ext: 0,
            trailers: 0,
            max_trailers,
            data: 0,
        }
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Chunk data bytes read so far.
    pub fn data_len(&self) -> u64 {
        self.data
    }

    /// Reads `input` up to the end of the body; answers how many bytes
    /// belong to it. `data` is handed each run of chunk data.
    pub fn advance(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            let b = input[i];
            self.state = match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 16 {
                            return Err(ChunkError);
                        }
                        let d = (b as char).to_digit(16).ok_or(ChunkError)?;
                        self.size = (self.size << 4) | u64::from(d);
                        State::Size { digits: digits + 1 }
                    }
                    _ if digits == 0 => return Err(ChunkError),
                    b'\r' => State::SizeLf,
                    b';' => State::Ext,
                    b' ' | b'\t' => State::SizeWs,
                    _ => return Err(ChunkError),
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => State::SizeWs,
                    b';' => State::Ext,
                    _ => return Err(ChunkError),
                },
                State::Ext => match b {
                    b'\r' => State::SizeLf,
                    b'\n' | 0..=8 | 10..=31 | 127 => return Err(ChunkError),
                    _ => {
                        self.ext += 1;
                        if self.ext > MAX_EXT {
                            return Err(ChunkError);
                        }
                        State::Ext
                    }
                },
                State::SizeLf => match b {
                    b'\n' if self.size == 0 => State::TrailerStart,
                    b'\n' => State::Data,
                    _ => return Err(ChunkError),
                },
                State::Data => {
                    let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    data(&input[i..i + n]);
                    self.size -= n as u64;
                    self.data += n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => {
                    self.ext = 0;
                    State::Size { digits: 0 }
                }
                State::DataCr | State::DataLf => return Err(ChunkError),
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    // obs-fold or a bare LF: refused.
                    b' ' | b'\t' | b'\n' => return Err(ChunkError),
                    _ => self.trailer_byte(b, false)?,
                },
                State::Trailer { colon } => self.trailer_byte(b, colon)?,
                State::TrailerLf => match b {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkError),
                },
                State::EndLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(ChunkError),
                },
                State::Done => State::Done,
            };
            i += 1;
        }
        Ok(i)
    }

    fn trailer_byte(&mut self, b: u8, colon: bool) -> Result<State, ChunkError> {
        self.trailers += 1;
        if self.trailers > self.max_trailers {
            return Err(ChunkError);
        }
        Ok(match b {
            b'\r' if colon => State::TrailerLf,
            b'\r' | b'\n' | 0 => return Err(ChunkError),
            b':' => State::Trailer { colon: true },
            _ => State::Trailer { colon },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(parts: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut c = Chunked::new(1024);
        let (mut body, mut used) = (Vec::new(), 0);
        for p in parts {
            used += c.advance(p, |d| body.extend_from_slice(d))?;
        }
        Ok((body, used, c.done()))
    }

    #[test]
    fn bodies_end_where_they_say() {
        let (body, used, done) =
            run(&[b"5;a=b\r\nhel", b"lo\r\n0\r\nX-T: 1\r\n\r\nGET /"]).unwrap();
        assert_eq!((body.as_slice(), used, done), (&b"hello"[..], 27, true));
        // byte by byte
        let all = b"2\r\nhe\r\n3 ;x\r\nllo\r\n0\r\n\r\n";
        let parts: Vec<&[u8]> = all.chunks(1).collect();
        let (body, used, done) = run(&parts).unwrap();
        assert_eq!(
            (body.as_slice(), used, done),
            (&b"hello"[..], all.len(), true)
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        for bad in [
            &b"10000000000000005\r\nhello\r\n"[..],
            b"5x\r\nhello\r\n",
            b"0x5\r\nhello\r\n",
            b"-5\r\nhello\r\n",
            b"\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX\r\n",
            b"0\r\n folded\r\n\r\n",
            b"0\r\nno-colon\r\n\r\n",
        ] {
            assert_eq!(
                run(&[bad]),
                Err(ChunkError),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b'a'; MAX_EXT + 1];
        assert_eq!(run(&[b"5;", &long]), Err(ChunkError));
    }
}
