package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"mica/internal/compute/cpu"
	"mica/internal/llm/engine"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
)

// runFlags are `mica run`'s options.
type runFlags struct {
	temperature, topP, minP, repeatPenalty float32
	topK, maxTokens, threads, ctxSize      int
	seed                                   int64
	think, raw, verbose                    bool
	system                                 string
	stop                                   []string

	images []string // --image: a one-shot answer about these images
	mmproj string
	imageFlags
}

func (f *runFlags) sampling() sample.Params {
	p := sample.DefaultParams()
	p.Temperature, p.TopK, p.TopP, p.MinP = f.temperature, f.topK, f.topP, f.minP
	p.RepeatPenalty, p.Seed = f.repeatPenalty, f.seed
	return p
}

// newRunCmd is `mica run`: chat with a model, one-shot or interactively.
func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   `run MODEL ["PROMPT"]`,
		Short: "Chat with a Gemma GGUF model (one answer, or interactively)",
		Long: `Answer PROMPT in the model's chat format (Gemma 3 or Gemma 4), streaming the
answer to stdout. Without PROMPT, start an interactive conversation: each line
you type is a turn, the model keeps the conversation; /bye or Ctrl-D quits,
/clear forgets the conversation, Ctrl-C stops the current answer.

--think asks a Gemma 4 model to think first; the thinking goes to stderr
(dimmed on a terminal), the answer to stdout. --raw continues PROMPT as plain
text, without the chat format. Sampling defaults are llama.cpp's; --temperature 0
is greedy decoding.`,
		Example: `  mica run gemma-3-1b-it-q4_0.gguf "Why is the sky blue?"
  mica run gemma-4-e2b-it.gguf --think --system "Answer in French." "What is 17*23?"
  mica run model.gguf --raw --temperature 0 --max-tokens 32 "Once upon a time"
  mica run model.gguf          # interactive`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.maxTokens < 0 {
				return fmt.Errorf("--max-tokens %d: must be 0 (no limit) or more", f.maxTokens)
			}
			if f.ctxSize < 0 {
				return fmt.Errorf("--ctx %d: must be 0 (the model's, up to %d) or more", f.ctxSize, engine.DefaultContext)
			}
			if f.threads < 0 {
				return fmt.Errorf("--threads %d: must be 0 (all cores) or more", f.threads)
			}
			if len(args) == 2 && strings.TrimSpace(args[1]) == "" {
				return fmt.Errorf("empty prompt (leave PROMPT out for an interactive session)")
			}
			// Check the sampling values before loading the model.
			if _, err := sample.New(f.sampling(), 1<<20); err != nil {
				return err
			}
			be := cpu.New(f.threads)
			defer be.Close()
			e, err := engine.Open(args[0], be, engine.Options{Context: f.ctxSize})
			if err != nil {
				return err
			}
			defer e.Close()
			out := &answerWriter{out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(), dim: isTerminal(cmd.ErrOrStderr())}
			if f.think && e.Family() != "gemma4" && !f.raw {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: --think: %s models do not think; ignored\n", e.Family())
			}
			if len(f.images) > 0 {
				if len(args) != 2 {
					return fmt.Errorf("--image needs a PROMPT (images are for one-shot answers)")
				}
				res, err := runWithImages(cmd, e, args[0], &f, args[1], out)
				out.end()
				if f.verbose && res.Finish != "" {
					printUsage(cmd.ErrOrStderr(), res)
				}
				return err
			}
			if len(args) == 2 {
				res, err := oneTurn(cmd.Context(), e, &f, nil, args[1], out)
				out.end()
				if f.verbose {
					printUsage(cmd.ErrOrStderr(), res)
				}
				return err
			}
			return repl(cmd, e, &f, out)
		},
	}
	fl := cmd.Flags()
	d := sample.DefaultParams()
	fl.Float32Var(&f.temperature, "temperature", d.Temperature, "sampling temperature (0: greedy)")
	fl.IntVar(&f.topK, "top-k", d.TopK, "keep the K most likely tokens (0: off)")
	fl.Float32Var(&f.topP, "top-p", d.TopP, "nucleus sampling threshold (1: off)")
	fl.Float32Var(&f.minP, "min-p", d.MinP, "drop tokens less likely than this times the top one (0: off)")
	fl.Float32Var(&f.repeatPenalty, "repeat-penalty", 1, "penalise tokens of the last 64 (1: off)")
	fl.Int64Var(&f.seed, "seed", -1, "random seed (-1: random)")
	fl.IntVarP(&f.maxTokens, "max-tokens", "n", 0, "most tokens per answer (0: until the end of the turn or a full context)")
	fl.IntVarP(&f.threads, "threads", "t", 0, "threads (0: all cores)")
	fl.IntVar(&f.ctxSize, "ctx", 0, fmt.Sprintf("context size in tokens (0: the model's, up to %d)", engine.DefaultContext))
	fl.BoolVar(&f.think, "think", false, "let a Gemma 4 model think first (thinking shown on stderr)")
	fl.BoolVar(&f.raw, "raw", false, "plain text completion of PROMPT, without the chat format")
	fl.StringVar(&f.system, "system", "", "system prompt")
	fl.StringArrayVar(&f.stop, "stop", nil, "stop the answer where this text appears (repeatable)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "print token counts and speeds on stderr after each answer")
	fl.StringArrayVar(&f.images, "image", nil, "image file to ask about (repeatable; PNG, JPEG, GIF or WebP)")
	fl.StringVar(&f.mmproj, "mmproj", "", "vision projector (mmproj GGUF) for --image (default: the one beside MODEL)")
	f.imageFlags.register(cmd)
	return cmd
}

// oneTurn answers prompt after the conversation history (chat), or
// continues it (--raw).
func oneTurn(ctx context.Context, e *engine.Engine, f *runFlags, history []chat.Message, prompt string, out *answerWriter) (engine.Result, error) {
	if f.raw {
		return e.Complete(ctx, engine.CompletionRequest{Prompt: prompt, Sampling: f.sampling(), MaxTokens: f.maxTokens, Stop: f.stop}, out.event)
	}
	msgs := append(append([]chat.Message(nil), history...), chat.Message{Role: "user", Content: chat.Text(prompt)})
	return e.Chat(ctx, engine.ChatRequest{Messages: msgs, System: f.system, Think: f.think,
		Sampling: f.sampling(), MaxTokens: f.maxTokens, Stop: f.stop}, out.event)
}

// answerWriter prints events: the answer to out, thinking to errw (dimmed
// on a terminal), tool calls to out on lines of their own.
type answerWriter struct {
	out, errw io.Writer
	dim       bool
	thinking  bool // inside a thinking block
	lastNL    bool // the last byte written to out was a newline (or nothing was)
	wrote     bool
}

func (w *answerWriter) event(ev engine.Event) {
	switch ev.Kind {
	case engine.ThinkingEvent:
		if !w.thinking {
			w.thinking = true
			if w.dim {
				fmt.Fprint(w.errw, "\x1b[2m")
			} else {
				fmt.Fprint(w.errw, "Thinking:\n")
			}
		}
		fmt.Fprint(w.errw, ev.Text)
		return
	case engine.ToolCallEvent:
		w.endThinking()
		if w.wrote && !w.lastNL {
			fmt.Fprintln(w.out)
		}
		fmt.Fprintf(w.out, "[tool call] %s(%s)\n", ev.Call.Name, string(ev.Call.Arguments))
		w.wrote, w.lastNL = true, true
		return
	}
	w.endThinking()
	if ev.Text == "" {
		return
	}
	fmt.Fprint(w.out, ev.Text)
	w.wrote, w.lastNL = true, strings.HasSuffix(ev.Text, "\n")
}

func (w *answerWriter) endThinking() {
	if !w.thinking {
		return
	}
	w.thinking = false
	if w.dim {
		fmt.Fprint(w.errw, "\x1b[0m\n\n")
	} else {
		fmt.Fprint(w.errw, "\n(end of thinking)\n\n")
	}
}

// end closes the answer with a newline.
func (w *answerWriter) end() {
	w.endThinking()
	if w.wrote && !w.lastNL {
		fmt.Fprintln(w.out)
	}
	w.wrote, w.lastNL = false, true
}

func printUsage(w io.Writer, r engine.Result) {
	u := r.Usage
	fmt.Fprintf(w, "prompt %d tokens (%d cached) in %.2fs, %.1f tokens/s; answer %d tokens, %.1f tokens/s; first token after %.2fs; finish: %s\n",
		u.PromptTokens, u.CachedTokens, u.Prefill.Seconds(), u.PrefillTokensPerSec(),
		u.GeneratedTokens, u.DecodeTokensPerSec(), u.TimeToFirstToken.Seconds(), r.Finish)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// repl is the interactive session. Ctrl-C stops an answer (not the session);
// at the prompt it quits, as do /bye and end of input.
func repl(cmd *cobra.Command, e *engine.Engine, f *runFlags, out *answerWriter) error {
	in := cmd.InOrStdin()
	tty := isTerminal(in)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	// The root context is cancelled by the first Ctrl-C; this session
	// handles the signals itself.
	base := context.WithoutCancel(cmd.Context())

	type line struct {
		text string
		err  error
	}
	lines := make(chan line)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		r := bufio.NewReader(in)
		for {
			s, err := r.ReadString('\n')
			select {
			case lines <- line{s, err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	if tty {
		fmt.Fprintf(cmd.OutOrStdout(), "mica: chatting with %s (%s). /bye or Ctrl-D quits, /clear forgets, Ctrl-C stops an answer.\n",
			e.Model().Config.Name, e.Family())
	}
	var history []chat.Message
	for {
		if tty {
			fmt.Fprint(cmd.OutOrStdout(), ">>> ")
		}
		var l line
		select {
		case l = <-lines:
		case s := <-sig:
			if tty {
				fmt.Fprintln(cmd.OutOrStdout())
			}
			if s == syscall.SIGTERM {
				return context.Canceled
			}
			return nil
		}
		text := strings.TrimSpace(l.text)
		if l.err != nil && l.err != io.EOF {
			return l.err
		}
		switch {
		case text == "/bye" || text == "/exit" || text == "/quit":
			return nil
		case text == "/clear":
			history = nil
			fmt.Fprintln(cmd.OutOrStdout(), "(conversation cleared)")
			continue
		case text == "/help" || text == "/?":
			fmt.Fprintln(cmd.OutOrStdout(), "/bye quits, /clear forgets the conversation, Ctrl-C stops an answer.")
			continue
		case text == "":
			if l.err == io.EOF {
				if tty {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				return nil
			}
			continue
		}

		ctx, cancel := context.WithCancel(base)
		done := make(chan struct{})
		stopped := make(chan os.Signal, 1)
		go func() {
			select {
			case s := <-sig:
				stopped <- s
				cancel()
			case <-done:
			}
		}()
		res, err := oneTurn(ctx, e, f, history, text, out)
		close(done)
		cancel()
		out.end()
		var s os.Signal
		select {
		case s = <-stopped:
		default:
		}
		if f.verbose {
			printUsage(cmd.ErrOrStderr(), res)
		}
		switch {
		case s == syscall.SIGTERM:
			return context.Canceled
		case errors.Is(err, context.Canceled):
			fmt.Fprintln(cmd.ErrOrStderr(), "(stopped)")
		case err != nil && res.Finish == "":
			// The request was refused (e.g. longer than the context):
			// the conversation is unchanged.
			fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
			continue
		case err != nil:
			fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
		}
		if !f.raw && (res.Text != "" || len(res.ToolCalls) > 0) {
			history = append(history, chat.Message{Role: "user", Content: chat.Text(text)},
				chat.Message{Role: "assistant", Content: chat.Text(res.Text), ToolCalls: res.ToolCalls})
		}
		if l.err == io.EOF {
			return nil
		}
	}
}
