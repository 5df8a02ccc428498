package pki

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LoadOrCreateEd25519 reads an Ed25519 private key (PKCS#8 PEM) from path,
// creating it with mode 0600 on first use. Minions keep their identity key
// here; the master keeps its TLS key here.
//
// An existing key that group or others may access is refused, as ssh
// refuses an unprotected private key: a key someone else could have read
// is no longer proof of identity, and carrying on would hide that.
func LoadOrCreateEd25519(path string) (ed25519.PrivateKey, error) {
	b, err := readPrivate(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("key %s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", path, err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key %s: not an Ed25519 key", path)
		}
		return priv, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return priv, nil
}

// ErrKeyExposed marks a private key file whose mode lets group or others
// in.
var ErrKeyExposed = errors.New("private key is accessible by group or others")

// readPrivate reads a private key file after checking its mode on the open
// file (no window between the check and the read).
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key %s: mode %04o: %w; run: chmod 600 %s", path, perm, ErrKeyExposed, path)
	}
	const maxKey = 64 << 10
	if fi.Size() > maxKey {
		return nil, fmt.Errorf("key %s: %d bytes is too large for a private key", path, fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return b, nil
}

// LoadOrCreateMasterCert returns the master's TLS certificate, making a
// self-signed one on first start. Minions do not verify it through a CA:
// they pin its fingerprint (CertFingerprint), as Salt pins master.pub.
func LoadOrCreateMasterCert(dir string) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	keyPath := filepath.Join(dir, "master.key")
	certPath := filepath.Join(dir, "master.crt")
	priv, err := LoadOrCreateEd25519(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:      pkix.Name{CommonName: "brine-master"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().AddDate(30, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     []string{"brine-master"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), crypto.Signer(priv))
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("master certificate: %w", err)
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := WriteFileAtomic(certPath, certPEM, 0o644); err != nil {
			return tls.Certificate{}, fmt.Errorf("master certificate %s: %w", certPath, err)
		}
	} else if err != nil {
		return tls.Certificate{}, fmt.Errorf("master certificate %s: %w", certPath, err)
	}
	keyPEM, err := readPrivate(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("master certificate %s: %w", certPath, err)
	}
	return cert, nil
}

// CertFingerprint is the SHA-256 of a certificate's DER, in Salt's finger
// format (hex pairs joined by ':').
func CertFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return colonHex(sum[:])
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// NormalizeFinger lowercases a fingerprint and accepts it with or without colons.
func NormalizeFinger(f string) string {
	f = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(f), ":", ""))
	b, err := hex.DecodeString(f)
	if err != nil {
		return f
	}
	return colonHex(b)
}

// WriteFileAtomic writes data to a temp file in path's directory, fsyncs
// it and renames it over path, so readers see the old or the new content,
// never a torn file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
