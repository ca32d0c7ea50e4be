//! Streaming feature extraction: audio pushed in chunks of any size per
//! utterance, frames computed on the rayon pool as soon as their samples
//! are in, equal (bit for bit) to what `Extractor::extract` gives for the
//! whole audio; `top_db` is the one exception (see `TopDbReference`).

mod error;
mod registry;
mod stats;
#[cfg(test)]
mod tests;
mod utterance;

pub use error::StreamError;
pub use registry::{EndReason, Stream, StreamEvent, StreamSink, Streams, StreamsConfig, Summary};
pub use stats::StreamStats;
pub use utterance::{Block, TopDbReference, Utterance};
