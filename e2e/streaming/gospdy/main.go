// Command gospdy is an exec client built on spdystream, the SPDY library that
// kubelet, kubectl and crictl use: the independent peer for a cross-check of
// crid's SPDY server, and the source of the Go-made header blocks kept as a
// unit-test fixture (tests/crid/streaming/test_go_fixture.py).
//
// Build (Debian: golang-go, golang-github-docker-spdystream-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/gospdy .
//
// Run: gospdy URL CAPTURE_FILE [stdin]   (stdin is copied from our stdin)
// Prints the remote stdout and stderr, then "STATUS <error stream>" on stderr.
//
// Or: gospdy URL CAPTURE_FILE portforward PORT: one forwarded connection, our
// stdin to the port and its answer to our stdout; "ERROR <text>" on stderr.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"

	"github.com/docker/spdystream"
)

// recordingConn reads through the HTTP reader (it may hold SPDY bytes) and
// copies every byte we send to a capture file.
type recordingConn struct {
	net.Conn
	r       *bufio.Reader
	capture io.Writer
}

func (c *recordingConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *recordingConn) Write(p []byte) (int, error) {
	c.capture.Write(p)
	return c.Conn.Write(p)
}

func main() {
	target, capturePath := os.Args[1], os.Args[2]
	mode := ""
	if len(os.Args) > 3 {
		mode = os.Args[3]
	}
	protocol := "v4.channel.k8s.io"
	if mode == "portforward" {
		protocol = "portforward.k8s.io"
	}
	u, err := url.Parse(target)
	check(err)
	conn, err := net.Dial("tcp", u.Host)
	check(err)
	req, err := http.NewRequest("POST", target, nil)
	check(err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Add("X-Stream-Protocol-Version", protocol)
	check(req.Write(conn))
	reader := bufio.NewReader(conn)
	resp, err := http.ReadResponse(reader, req)
	check(err)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		check(fmt.Errorf("upgrade refused: %s", resp.Status))
	}
	capture, err := os.Create(capturePath)
	check(err)
	defer capture.Close()
	spdy, err := spdystream.NewConnection(&recordingConn{conn, reader, capture}, false)
	check(err)
	go spdy.Serve(spdystream.NoOpStreamHandler)

	open := func(kind string, extra ...string) *spdystream.Stream {
		headers := http.Header{"StreamType": {kind}}
		for i := 0; i+1 < len(extra); i += 2 {
			headers.Set(extra[i], extra[i+1])
		}
		stream, err := spdy.CreateStream(headers, nil, false)
		check(err)
		check(stream.Wait())
		return stream
	}
	if mode == "portforward" {
		forward(open, os.Args[4])
		spdy.Close()
		return
	}
	errorStream := open("error")
	var stdin *spdystream.Stream
	if mode == "stdin" {
		stdin = open("stdin")
	}
	stdout, stderr := open("stdout"), open("stderr")
	var copies sync.WaitGroup
	for _, pair := range []struct {
		from io.Reader
		to   io.Writer
	}{{stdout, os.Stdout}, {stderr, os.Stderr}} {
		copies.Add(1)
		go func(from io.Reader, to io.Writer) {
			defer copies.Done()
			io.Copy(to, from)
		}(pair.from, pair.to)
	}
	if stdin != nil {
		go func() {
			io.Copy(stdin, os.Stdin)
			stdin.Close()
		}()
	}
	status, _ := io.ReadAll(errorStream)
	copies.Wait()
	fmt.Fprintf(os.Stderr, "STATUS %s\n", status)
	spdy.Close()
}

// forward does what client-go's port-forwarder does for one connection.
func forward(open func(string, ...string) *spdystream.Stream, port string) {
	errorStream := open("error", "Port", port, "RequestID", "0")
	errorStream.Close() // the client never writes on it
	data := open("data", "Port", port, "RequestID", "0")
	go func() {
		io.Copy(data, os.Stdin)
		data.Close()
	}()
	io.Copy(os.Stdout, data)
	problem, _ := io.ReadAll(errorStream)
	fmt.Fprintf(os.Stderr, "ERROR %s\n", problem)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gospdy:", err)
		os.Exit(2)
	}
}
