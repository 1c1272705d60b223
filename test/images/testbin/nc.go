package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// netcat is the client side of netcat-openbsd as Kubernetes' e2e specs use it inside agnhost
// (`echo hostName | nc -w 1 -u IP PORT`, `nc -vz -w 1 IP PORT`): it sends its input over TCP or UDP
// and prints what comes back until the peer closes or, with -w, nothing came for that long.
func netcat(args []string) int {
	fs := flag.NewFlagSet("nc", flag.ContinueOnError)
	udp := fs.Bool("u", false, "UDP")
	wait := fs.Int("w", 0, "timeout in seconds")
	zero := fs.Bool("z", false, "only check that the port is open")
	verbose := fs.Bool("v", false, "verbose")
	fs.Bool("n", false, "numeric addresses only")
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: nc [-uvzn] [-w secs] host port")
		return 2
	}
	network := "tcp"
	if *udp {
		network = "udp"
	}
	timeout := time.Duration(*wait) * time.Second
	addr := net.JoinHostPort(fs.Arg(0), fs.Arg(1))
	var conn net.Conn
	var err error
	if timeout > 0 {
		conn, err = net.DialTimeout(network, addr, timeout)
	} else {
		conn, err = net.Dial(network, addr)
	}
	if err != nil {
		if *verbose {
			fmt.Fprintf(os.Stderr, "nc: connect to %s port %s (%s) failed: %v\n", fs.Arg(0), fs.Arg(1), network, err)
		}
		return 1
	}
	defer conn.Close()
	if *verbose {
		fmt.Fprintf(os.Stderr, "Connection to %s %s port [%s] succeeded!\n", fs.Arg(0), fs.Arg(1), network)
	}
	if *zero {
		return 0
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		io.Copy(conn, os.Stdin)
		if c, ok := conn.(*net.TCPConn); ok {
			c.CloseWrite()
		}
	}()
	if *udp {
		<-sent // a datagram answer comes after the question
	}
	buf := make([]byte, 64<<10)
	for {
		if timeout > 0 {
			conn.SetReadDeadline(time.Now().Add(timeout))
		}
		n, err := conn.Read(buf)
		os.Stdout.Write(buf[:n])
		if err != nil {
			return 0
		}
	}
}
