package service

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
)

// TLSPair is a certificate/key flag pair for a listener.
type TLSPair struct {
	Cert, Key string
	prefix    string
}

// RegisterFlags registers -<prefix>-cert and -<prefix>-key; what names the
// listener in the help text.
func (t *TLSPair) RegisterFlags(fs *flag.FlagSet, prefix, what string) {
	t.prefix = prefix
	fs.StringVar(&t.Cert, prefix+"-cert", "", "PEM certificate `file`: serve "+what+" over TLS (with -"+prefix+"-key)")
	fs.StringVar(&t.Key, prefix+"-key", "", "PEM private key `file` for -"+prefix+"-cert")
}

// Config loads the pair; nil (and no error) when neither flag is set.
func (t TLSPair) Config() (*tls.Config, error) {
	if t.Cert == "" && t.Key == "" {
		return nil, nil
	}
	if t.Cert == "" || t.Key == "" {
		return nil, Usagef("-%s-cert and -%s-key go together", t.prefix, t.prefix)
	}
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, Usage(fmt.Errorf("-%s-cert/-key: %w", t.prefix, err))
	}
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}, nil
}

// registerDialTLS adds the client-side intranet TLS flags to Common.
func (c *Common) registerDialTLS(fs *flag.FlagSet) {
	fs.StringVar(&c.TLSCA, "tls-ca", "",
		"PEM CA bundle `file`: dial the intranet (mgrserver, gateways) over TLS, trusting these CAs")
	fs.StringVar(&c.TLSServerName, "tls-server-name", "",
		"`name` expected in intranet certificates (default: the dialled host)")
}

// DialTLS returns the TLS config this process dials the intranet with; nil
// when -tls-ca is not set (plain TCP).
func (c *Common) DialTLS() (*tls.Config, error) {
	if c.TLSCA == "" {
		if c.TLSServerName != "" {
			return nil, Usagef("-tls-server-name needs -tls-ca")
		}
		return nil, nil
	}
	pem, err := os.ReadFile(c.TLSCA)
	if err != nil {
		return nil, Usage(fmt.Errorf("-tls-ca: %w", err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, Usagef("-tls-ca %s: no PEM certificates", c.TLSCA)
	}
	return &tls.Config{RootCAs: pool, ServerName: c.TLSServerName, MinVersion: tls.VersionTLS12}, nil
}
