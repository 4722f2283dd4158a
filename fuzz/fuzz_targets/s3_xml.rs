//! s3s restXml deserialisation of the request bodies Coffer accepts: CompleteMultipartUpload,
//! Delete (DeleteObjects), Tagging (bucket and object), ServerSideEncryptionConfiguration,
//! VersioningConfiguration and CreateBucketConfiguration — exactly as s3s reads a body
//! (`Deserializer::new`, `T::deserialize`, `expect_eof`).
//!
//! Input: an XML body, tried as every type. Checked: never panics, neither deserialising nor
//! re-serialising (s3s `Serializer`) and reading back what deserialised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3s::dto::{
    CompletedMultipartUpload, CreateBucketConfiguration, Delete, ServerSideEncryptionConfiguration,
    Tagging, VersioningConfiguration,
};
use s3s::xml::{DeResult, Deserialize, Deserializer, Serialize, Serializer};

fn de<T: for<'x> Deserialize<'x>>(xml: &[u8]) -> DeResult<T> {
    let mut d = Deserializer::new(xml);
    let v = T::deserialize(&mut d)?;
    d.expect_eof()?;
    Ok(v)
}

/// Deserialises `xml` as `T`; if that works, re-serialises it and reads it back (which must not
/// panic; the result is not compared: s3s's serialiser is not an exact inverse for some values
/// Coffer never echoes, e.g. an unquoted-fallback ETag holding control characters).
fn round_trip<T: for<'x> Deserialize<'x> + Serialize + std::fmt::Debug>(xml: &[u8]) {
    let Ok(v) = de::<T>(xml) else {
        return;
    };
    let _ = format!("{v:?}");
    let mut out = Vec::new();
    if v.serialize(&mut Serializer::new(&mut out)).is_ok() {
        let _ = de::<T>(&out);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<CompletedMultipartUpload>(data);
    round_trip::<Delete>(data);
    round_trip::<Tagging>(data);
    round_trip::<ServerSideEncryptionConfiguration>(data);
    round_trip::<VersioningConfiguration>(data);
    round_trip::<CreateBucketConfiguration>(data);
});
