package pki

import (
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
)

// ExporterLabel is the RFC 5705 label brine uses to bind a minion's proof
// of key possession to one TLS connection: a proof captured on one
// connection is worthless on any other, so a man in the middle or a replay
// cannot reuse it.
const ExporterLabel = "EXPORTER-brine-minion-auth-v1"

// AuthTranscript is what a minion signs to prove it holds the private key
// for the id it claims: a fixed context string, the id, the master's fresh
// nonce and the TLS exporter value of this connection.
func AuthTranscript(id string, nonce, exporter []byte) []byte {
	msg := make([]byte, 0, 64+len(id)+len(nonce)+len(exporter))
	msg = append(msg, "brine minion auth v1\x00"...)
	msg = append(msg, id...)
	msg = append(msg, 0)
	msg = append(msg, nonce...)
	msg = append(msg, exporter...)
	return msg
}

// Exporter derives the channel-binding value from a TLS connection state.
func Exporter(cs *tls.ConnectionState) ([]byte, error) {
	if cs == nil {
		return nil, errors.New("no TLS connection state")
	}
	v, err := cs.ExportKeyingMaterial(ExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("tls exporter: %w", err)
	}
	return v, nil
}

// VerifyProof checks a minion's signature over its transcript.
func VerifyProof(pub ed25519.PublicKey, id string, nonce, exporter, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub, AuthTranscript(id, nonce, exporter), sig)
}

// ValidateID refuses minion ids that are unsafe as file names or ambiguous
// (the key store's rules); the master checks every Hello with it.
func ValidateID(id string) error { return ksValidateID(id) }
