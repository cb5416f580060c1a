// Command workload is what the node suite's pods run (it is the whole of
// their image): it reports what the kubelet gave the container and does
// what a test needs a container to do.
//
//	workload env NAME...        print NAME=value for each
//	workload id                 print uid, gid and supplementary groups
//	workload write PATH TEXT    write TEXT to PATH
//	workload stat PATH          print PATH's owner, group and mode
//	workload alloc MIB          allocate and touch MIB MiB, then exit 0
//	workload sleep              wait for SIGTERM
//
// Several commands run in order when separated by "--".
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	args := os.Args[1:]
	for len(args) > 0 {
		n := 0
		for n < len(args) && args[n] != "--" {
			n++
		}
		if err := run(args[:n]); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			os.Exit(1)
		}
		if n < len(args) {
			n++
		}
		args = args[n:]
	}
}

func run(cmd []string) error {
	if len(cmd) == 0 {
		return fmt.Errorf("no command")
	}
	switch cmd[0] {
	case "env":
		for _, name := range cmd[1:] {
			fmt.Printf("%s=%s\n", name, os.Getenv(name))
		}
	case "id":
		groups, err := os.Getgroups()
		if err != nil {
			return err
		}
		fmt.Printf("uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups)
	case "write":
		if len(cmd) != 3 {
			return fmt.Errorf("write PATH TEXT")
		}
		return os.WriteFile(cmd[1], []byte(cmd[2]), 0o644)
	case "stat":
		for _, path := range cmd[1:] {
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			st := info.Sys().(*syscall.Stat_t)
			fmt.Printf("%s uid=%d gid=%d mode=%v\n", path, st.Uid, st.Gid, info.Mode())
		}
	case "alloc":
		mib, err := strconv.Atoi(cmd[1])
		if err != nil {
			return err
		}
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Printf("allocated %d MiB\n", len(keep))
	case "sleep":
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM)
		<-stop
	default:
		return fmt.Errorf("unknown command %q", cmd[0])
	}
	return nil
}
