package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/service"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, f := range []string{"login", "n", "duration", "chat-every", "password", "prefix", "queue", "mode", "ramp", "timeout"} {
		envName := "XSERVER_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
		if !strings.Contains(out.String(), "  -"+f+" ") && !strings.Contains(out.String(), "  -"+f+"\n") {
			t.Errorf("usage lacks -%s", f)
		}
		if !strings.Contains(out.String(), "(env "+envName) {
			t.Errorf("usage lacks %s", envName)
		}
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.LoginURL != "http://127.0.0.1:8080" || c.Bots != 10 || o.duration != 10*time.Second || c.ChatEvery != time.Second ||
		c.Password != "xserver" || c.Prefix != "bot" || !c.Queue {
		t.Errorf("defaults %+v, duration %v", c, o.duration)
	}
	o, err = parseFlags([]string{"-n", "3", "-duration", "1s", "-queue=false"},
		env(map[string]string{"XSERVER_PREFIX": "load", "XSERVER_N": "99", "XSERVER_RAMP": "5s"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Bots != 3 || o.cfg.Prefix != "load" || o.cfg.Queue || o.cfg.Ramp != 500*time.Millisecond {
		t.Errorf("flags and env: %+v (the ramp must be cut to half of -duration)", o.cfg)
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "0", "-duration", "1s"},
		{"-duration", "-1s"},
		{"-login", "localhost:8080"},
		{"-nope"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, env(nil), &stdout, &stderr); code != service.ExitUsage {
			t.Errorf("%q: exit %d, want %d; stderr:\n%s", args, code, service.ExitUsage, &stderr)
		}
	}
}

// TestNoLoginServiceExits1: bots that cannot log in fail the run, and the
// summary says why.
func TestNoLoginServiceExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-login", "http://" + addr, "-n", "2", "-duration", "1s", "-timeout", "500ms"},
		env(nil), &stdout, &stderr)
	if code != service.ExitFailure {
		t.Errorf("exit %d, want %d", code, service.ExitFailure)
	}
	for _, want := range []string{"final summary", "logged in 0 (failed 2)", "errors: login 2", "first login: bot-"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &stdout)
		}
	}
	if !strings.Contains(stderr.String(), "2 bots failed to log in") {
		t.Errorf("stderr:\n%s", &stderr)
	}
}
