# bash completion for clawbox. The subcommands and options come from the program itself
# (`clawbox --help`, `clawbox SUB --help`), so they cannot drift from what it accepts.

_clawbox_subcommands()
{
	"$1" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'
}

# The long options (and -h, -v) of one subcommand, from its --help.
_clawbox_options()
{
	"$1" "$2" --help 2>/dev/null | grep -E '^ +-' |
		grep -oE '(^|[ ,])--?[a-zA-Z][a-zA-Z0-9-]*' |
		sed 's/^[ ,]*//' | sort -u
	echo --version
}

_clawbox()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local exe=${COMP_WORDS[0]} sub="" i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) sub=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [ -z "$sub" ]; then
		COMPREPLY=($(compgen -W "$(_clawbox_subcommands "$exe") --help --version" -- "$cur"))
		return
	fi
	case $prev in
	--mount | --workspace | --workdir | --rootfs | --vm-image | --session | --audit | \
		--hosts | --key-file | --model-key-file | --token-file | --config | --data-dir | \
		--global-memory | --socket | --vm-service | --share | --*-ca-file | --ca-file | \
		--host-socket | --state | --mount-allowlist)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--net) COMPREPLY=($(compgen -W "none proxy" -- "$cur")); return ;;
	--provider) COMPREPLY=($(compgen -W "anthropic openai" -- "$cur")); return ;;
	--vm-accel | --accel) COMPREPLY=($(compgen -W "auto kvm tcg" -- "$cur")); return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_clawbox_options "$exe" "$sub")" -- "$cur"))
	elif [ "$sub" = tasks ] && [ "$prev" = tasks ]; then
		COMPREPLY=($(compgen -W "list add cancel runs" -- "$cur"))
	elif [ "$sub" = run ]; then
		COMPREPLY=($(compgen -c -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _clawbox clawbox
