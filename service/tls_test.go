package service

import (
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/xserver/xserver/internal/tlstest"
)

func TestTLSFlags(t *testing.T) {
	tc := tlstest.New(t)
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c Common
	var p TLSPair
	c.RegisterFlags(fs)
	p.RegisterFlags(fs, "tls", "the listener")
	if err := fs.Parse([]string{"-tls-cert", tc.CertFile, "-tls-key", tc.KeyFile, "-tls-ca", tc.CAFile}); err != nil {
		t.Fatal(err)
	}
	server, err := p.Config()
	if err != nil || server == nil {
		t.Fatalf("server config: %v", err)
	}
	client, err := c.DialTLS()
	if err != nil || client == nil {
		t.Fatalf("client config: %v", err)
	}
	// The two configs talk to each other.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if s, err := ln.Accept(); err == nil {
			s.Write([]byte("ok"))
			s.Close()
		}
	}()
	cc := client.Clone()
	cc.ServerName = "127.0.0.1"
	conn, err := tls.Dial("tcp", ln.Addr().String(), cc)
	if err != nil {
		t.Fatalf("handshake with the flag-built configs: %v", err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if string(b) != "ok" {
		t.Fatalf("read %q", b)
	}

	var ue *UsageError
	if _, err := (TLSPair{Cert: tc.CertFile, prefix: "tls"}).Config(); !errors.As(err, &ue) {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := (TLSPair{Cert: "/nonexistent", Key: "/nonexistent", prefix: "tls"}).Config(); !errors.As(err, &ue) {
		t.Fatalf("missing files: %v", err)
	}
	if _, err := (&Common{TLSCA: tc.KeyFile}).DialTLS(); !errors.As(err, &ue) {
		t.Fatalf("a key is not a CA bundle: %v", err)
	}
	if _, err := (&Common{TLSServerName: "x"}).DialTLS(); !errors.As(err, &ue) {
		t.Fatalf("server name without CA: %v", err)
	}
	if cfg, err := (TLSPair{}).Config(); cfg != nil || err != nil {
		t.Fatal("no flags must mean plain TCP")
	}
}
