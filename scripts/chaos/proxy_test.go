package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers every line with the same line, after the preamble.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, _, err := readPreamble(c); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func preambleFor(addr string) []byte {
	b := []byte("SLRT\x01\x01")
	b = binary.BigEndian.AppendUint16(b, uint16(len(addr)))
	return append(b, addr...)
}

// proxied dials the proxy as broker src (advertising srcAddr).
func proxied(t *testing.T, p *Proxy, srcAddr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(preambleFor(srcAddr)); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string, within time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(within))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return line, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// newTestProxy is the proxy of broker 2 in front of an echo server; the
// dialer advertising "b1" is broker 1 and "b3" broker 3.
func newTestProxy(t *testing.T) (*Net, *Proxy) {
	t.Helper()
	n := NewNet()
	nodes := map[string]int{"b1": 1, "b3": 3}
	p, err := NewProxy(n, 2, "127.0.0.1:0", echoServer(t), func(a string) int { return nodes[a] })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return n, p
}

func TestProxyForwardsAndCutsOneWay(t *testing.T) {
	n, p := newTestProxy(t)
	c1, r1 := proxied(t, p, "b1")
	c3, r3 := proxied(t, p, "b3")
	if got, err := roundTrip(c1, r1, "hello", 2*time.Second); err != nil || got != "hello\n" {
		t.Fatalf("round trip: %q %v", got, err)
	}
	// Responses of broker 2 to broker 1 are cut: broker 1's request gets
	// no answer; broker 3 is unaffected.
	n.Cut(2, 1, true)
	if _, err := roundTrip(c1, r1, "held", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("answer crossed a cut link: %v", err)
	}
	if got, err := roundTrip(c3, r3, "other", 2*time.Second); err != nil || got != "other\n" {
		t.Fatalf("broker 3: %q %v", got, err)
	}
	// Healing delivers what was held, in order.
	n.Heal()
	_ = c1.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, err := r1.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after heal: %q %v", got, err)
	}
	// Requests of broker 1 to broker 2 cut: nothing reaches the echo.
	n.Cut(1, 2, true)
	if _, err := roundTrip(c1, r1, "dropped", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("request crossed a cut link: %v", err)
	}
	n.Cut(1, 2, false)
	_ = c1.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, err := r1.ReadString('\n'); err != nil || got != "dropped\n" {
		t.Fatalf("after heal: %q %v", got, err)
	}
}

func TestProxyDelay(t *testing.T) {
	n, p := newTestProxy(t)
	c1, r1 := proxied(t, p, "b1")
	n.Delay(1, 2, 150*time.Millisecond)
	start := time.Now()
	if got, err := roundTrip(c1, r1, "slow", 2*time.Second); err != nil || got != "slow\n" {
		t.Fatalf("round trip: %q %v", got, err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("delayed round trip took %v", took)
	}
}

func TestProxyReset(t *testing.T) {
	n, p := newTestProxy(t)
	c1, r1 := proxied(t, p, "b1")
	c3, r3 := proxied(t, p, "b3")
	for _, c := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{c1, r1}, {c3, r3}} {
		if _, err := roundTrip(c.c, c.r, "x", 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Reset(1, 2); got != 1 {
		t.Fatalf("reset %d connections, want 1", got)
	}
	if _, err := roundTrip(c1, r1, "y", 2*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("reset connection still answers or hangs: %v", err)
	}
	if got, err := roundTrip(c3, r3, "z", 2*time.Second); err != nil || got != "z\n" {
		t.Fatalf("broker 3's connection: %q %v", got, err)
	}
}

func TestProxyBrokerDownRefuses(t *testing.T) {
	n := NewNet()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p, err := NewProxy(n, 2, "127.0.0.1:0", dead, func(string) int { return 1 })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, r := proxied(t, p, "b1")
	if _, err := roundTrip(c, r, "x", 2*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("proxy of a dead broker: %v", err)
	}
}

func TestReadPreamble(t *testing.T) {
	pre, addr, err := readPreamble(bufio.NewReader(bytesReader(preambleFor("127.0.0.1:9192"))))
	if err != nil || addr != "127.0.0.1:9192" || len(pre) != 8+len(addr) {
		t.Fatalf("%q %q %v", pre, addr, err)
	}
	if _, _, err := readPreamble(bytesReader([]byte("GET / HTTP/1.1\r\n"))); err == nil {
		t.Fatal("accepted a non-preamble")
	}
	if _, _, err := readPreamble(bytesReader([]byte("SLRT\x01\x01\xff\xff"))); err == nil {
		t.Fatal("accepted a 64 KiB address")
	}
}

func bytesReader(b []byte) io.Reader {
	r, w, _ := os.Pipe()
	go func() { w.Write(b); w.Close() }()
	return r
}
