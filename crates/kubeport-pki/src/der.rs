//! The few DER operations the PKI needs beyond rcgen: splitting a certificate into its
//! elements and writing names with repeated attributes.
//!
//! rcgen keeps one value per attribute type in a distinguished name, but Kubernetes reads a
//! client's groups from *every* Organization attribute of the subject. So leaf certificates
//! are drafted by rcgen (extensions, validity, key) and then get their subject (and issuer)
//! names replaced here before being signed again with the CA key.

use anyhow::{bail, ensure, Result};

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_VERSION: u8 = 0xa0;

/// id-at-commonName (2.5.4.3), DER content of the OID.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-at-organizationName (2.5.4.10), DER content of the OID.
const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// Encodes one element: tag, definite length, content.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let significant = &bytes[first..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// Returns (tag, header length, content length) of the element at the start of `input`.
fn header(input: &[u8]) -> Result<(u8, usize, usize)> {
    ensure!(input.len() >= 2, "DER element truncated");
    let tag = input[0];
    ensure!(
        tag & 0x1f != 0x1f,
        "multi-byte DER tags are not used in certificates"
    );
    let first = input[1];
    if first < 0x80 {
        return Ok((tag, 2, first as usize));
    }
    let count = (first & 0x7f) as usize;
    ensure!((1..=4).contains(&count), "unsupported DER length encoding");
    ensure!(input.len() >= 2 + count, "DER length truncated");
    let len = input[2..2 + count]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    Ok((tag, 2 + count, len))
}

/// Splits the content of a constructed element into its child elements (each with header).
fn children(content: &[u8]) -> Result<Vec<&[u8]>> {
    let mut rest = content;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (_, head, len) = header(rest)?;
        ensure!(rest.len() >= head + len, "DER element overruns its parent");
        out.push(&rest[..head + len]);
        rest = &rest[head + len..];
    }
    Ok(out)
}

/// The content (without header) of the single element `element`, which must have `tag`.
fn content_of(element: &[u8], tag: u8) -> Result<&[u8]> {
    let (found, head, len) = header(element)?;
    ensure!(
        found == tag,
        "expected DER tag {tag:#04x}, found {found:#04x}"
    );
    ensure!(
        element.len() == head + len,
        "trailing bytes after DER element"
    );
    Ok(&element[head..])
}

/// Encodes an X.509 Name: one RDN per Organization value, then the CommonName, the order
/// Go's crypto/x509 and kubeadm use (`O = system:masters, CN = kubernetes-admin`).
pub(crate) fn encode_name(common_name: &str, organizations: &[&str]) -> Vec<u8> {
    let attribute = |oid: &[u8], value: &str| {
        let pair = [tlv(TAG_OID, oid), tlv(TAG_UTF8_STRING, value.as_bytes())].concat();
        tlv(TAG_SET, &tlv(TAG_SEQUENCE, &pair))
    };
    let mut rdns: Vec<u8> = organizations
        .iter()
        .flat_map(|o| attribute(OID_ORGANIZATION, o))
        .collect();
    rdns.extend(attribute(OID_COMMON_NAME, common_name));
    tlv(TAG_SEQUENCE, &rdns)
}

/// A certificate taken apart: the to-be-signed part and the signature algorithm element.
pub(crate) struct CertificateParts<'a> {
    tbs_fields: Vec<&'a [u8]>,
    signature_algorithm: &'a [u8],
}

impl<'a> CertificateParts<'a> {
    pub(crate) fn parse(certificate: &'a [u8]) -> Result<Self> {
        let top = children(content_of(certificate, TAG_SEQUENCE)?)?;
        let [tbs, signature_algorithm, _signature] = top[..] else {
            bail!("a certificate has three elements, found {}", top.len());
        };
        let tbs_fields = children(content_of(tbs, TAG_SEQUENCE)?)?;
        ensure!(
            tbs_fields.first().map(|f| f[0]) == Some(TAG_VERSION) && tbs_fields.len() >= 7,
            "expected an X.509 v3 TBSCertificate"
        );
        Ok(Self {
            tbs_fields,
            signature_algorithm,
        })
    }

    /// The TBSCertificate with issuer and subject names replaced (both already DER-encoded).
    pub(crate) fn tbs_with_names(&self, issuer: &[u8], subject: &[u8]) -> Vec<u8> {
        // Fields of a v3 TBSCertificate: version, serialNumber, signature, issuer, validity,
        // subject, subjectPublicKeyInfo, [extensions].
        const ISSUER: usize = 3;
        const SUBJECT: usize = 5;
        let content: Vec<u8> = self
            .tbs_fields
            .iter()
            .enumerate()
            .flat_map(|(i, field)| match i {
                ISSUER => issuer,
                SUBJECT => subject,
                _ => field,
            })
            .copied()
            .collect();
        tlv(TAG_SEQUENCE, &content)
    }

    /// Assembles a Certificate from a TBSCertificate and its signature, keeping this
    /// certificate's signature algorithm (the same CA key signs both).
    pub(crate) fn assemble(&self, tbs: &[u8], signature: &[u8]) -> Vec<u8> {
        let bit_string = tlv(TAG_BIT_STRING, &[&[0u8][..], signature].concat());
        tlv(
            TAG_SEQUENCE,
            &[tbs, self.signature_algorithm, &bit_string].concat(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Name};

    #[test]
    fn lengths_use_short_and_long_forms() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0u8; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(header(&longer).unwrap(), (0x04, 4, 300));
    }

    #[test]
    fn name_lists_every_organization_then_the_common_name() {
        let name = encode_name("alice", &["a", "b"]);
        let (rest, parsed) = X509Name::from_der(&name).unwrap();
        assert!(rest.is_empty());
        let orgs: Vec<_> = parsed
            .iter_organization()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(orgs, ["a", "b"]);
        assert_eq!(parsed.to_string(), "O=a, O=b, CN=alice");
    }
}
