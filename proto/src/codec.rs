//! The codec every pfc service uses: prost, except that a message that fails to decode is the
//! caller's mistake (`INVALID_ARGUMENT`), not a server fault.
//!
//! The most common such mistake is a `string` field holding bytes that are not UTF-8; prost
//! rejects those while decoding, before any handler runs, and stock tonic reports it as
//! `INTERNAL`. Clients then can't tell "you sent garbage" from "the server broke", so pfc maps
//! it to `INVALID_ARGUMENT` with a message that names the problem.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Prost codec whose decode errors are `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct PfcCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for PfcCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for PfcCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = PfcDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        PfcDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

/// Decoder half of [`PfcCodec`].
#[derive(Debug, Clone)]
pub struct PfcDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for PfcDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            Status::invalid_argument(format!(
                "message is not valid protobuf (string fields must be UTF-8): {}",
                s.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
