package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"mica/internal/models/gemma/chat"
)

func newDevChatFormatCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "chat-format gemma3|gemma4 < VARS.json",
		Short: "Print the exact prompt a chat template renders for some variables",
		Long: `Read template variables as JSON on stdin — {"messages": [...], "tools": [...],
"add_generation_prompt": true, "enable_thinking": false} — and print the exact
prompt string the model family's official chat template renders for them,
with nothing added (no trailing newline). mica's chat formats are Go code that
reproduces the official templates byte for byte.`,
		Example: `  echo '{"messages":[{"role":"user","content":"Hi"}],"add_generation_prompt":true}' | mica dev chat-format gemma4`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			family := args[0]
			if family != "gemma3" && family != "gemma4" {
				return fmt.Errorf("unknown chat format %q: use gemma3 or gemma4", family)
			}
			data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(data)) == "" {
				return fmt.Errorf("no template variables on stdin: pipe a JSON object such as {\"messages\":[...]}")
			}
			out, err := chat.RenderJSON(family, data)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), out)
			return err
		},
	}
}
