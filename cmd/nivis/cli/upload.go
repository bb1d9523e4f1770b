package cli

import (
	"context"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/sshclient"
)

// newUploadCmd is a plain file upload over nivis's SSH transport. Hidden:
// it exists for bench/upload.sh and for checking a host's reachability.
func newUploadCmd(g *Globals) *cobra.Command {
	var (
		method string
		mode   string
	)
	cmd := &cobra.Command{
		Use:    "upload TARGET LOCAL REMOTE",
		Short:  "Upload one file over SSH (atomic, with progress)",
		Hidden: true,
		Args:   cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpload(cmd.Context(), g, args, method, mode)
		},
	}
	cmd.Flags().StringVar(&method, "method", "exec", "transfer method: exec (cat over an exec channel) or sftp")
	cmd.Flags().StringVar(&mode, "mode", "0644", "file mode of the remote file (octal)")
	return cmd
}

// runUpload is `nivis upload TARGET LOCAL REMOTE`.
func runUpload(ctx context.Context, g *Globals, args []string, method, mode string) error {
	m := sshclient.UploadExec
	switch method {
	case "exec":
	case "sftp":
		m = sshclient.UploadSFTP
	default:
		return exitcode.Errorf(exitcode.Usage, "--method %q: use exec or sftp", method)
	}
	perm, err := strconv.ParseUint(mode, 8, 32)
	if err != nil {
		return exitcode.Errorf(exitcode.Usage, "--mode %q: want octal like 0644", mode)
	}
	f, err := os.Open(args[1])
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	if !st.Mode().IsRegular() {
		return exitcode.Errorf(exitcode.Usage, "%s is not a regular file", args[1])
	}
	sess, err := g.Connect(ctx, args[0])
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := sess.UploadWith(ctx, m, f, st.Size(), args[2], os.FileMode(perm)); err != nil {
		return err
	}
	g.Log.Debugf("uploaded %s to %s:%s", args[1], sess, args[2])
	return nil
}
