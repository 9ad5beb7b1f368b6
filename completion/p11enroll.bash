# SPDX-License-Identifier: BSD-3-Clause
# bash completion for p11enroll(1): the global options, the commands of
# cli/main.c's commands[] and each command's own options (cli/*.c).
# Installed as $(datadir)/bash-completion/completions/p11enroll.

_p11enroll()
{
	local cur prev words cword
	_init_completion || return

	local global_opts="--config --json --no-autostart --pin-stdin
	    --final-try --verbose --help --version"
	local commands="status tokens token enroll renew list service admin
	    browser doctor config help"

	# options that take a value
	case $prev in
	--reason)
		COMPREPLY=($(compgen -W 'expired lost compromised' -- "$cur"))
		return
		;;
	-c | --config | --invitation)
		_filedir
		return
		;;
	--out)
		_filedir
		return
		;;
	--key-type | --type)
		COMPREPLY=($(compgen -W 'ec-p256 ec-p384 rsa-2048 rsa-3072
		    rsa-4096' -- "$cur"))
		return
		;;
	--service)
		# the service names of the configuration, when the agent says
		COMPREPLY=($(compgen -W "$("${words[0]}" --no-autostart \
		    status 2>/dev/null | sed -n 's/^services: *//p' |
		    tr ',' ' ')" -- "$cur"))
		return
		;;
	--copy-from)
		_filedir pem
		return
		;;
	--root)
		_filedir -d
		return
		;;
	--token | --resume | --contract-id | --user-id | --credential | \
	    --id | --label | --subject | --trust-fingerprint | --url | \
	    --issuer-cn | --name)
		return
		;;
	esac

	# the command: the first word after the global options
	local i cmd= sub= opts=
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-c | --config)
			((i++))
			;;
		-*) ;;
		*)
			if [[ -z $cmd ]]; then
				cmd=${words[i]}
			elif [[ -z $sub ]]; then
				sub=${words[i]}
			fi
			;;
		esac
	done

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global_opts -c -v -h -V" \
			    -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	case $cmd in
	token)
		if [[ -z $sub ]]; then
			COMPREPLY=($(compgen -W 'objects keygen csr import
			    delete' -- "$cur"))
			return
		fi
		case $sub in
		objects) opts="--login" ;;
		keygen) opts="--type --id --label" ;;
		csr) opts="--id --subject --copy-from --out" ;;
		import)
			opts="--id --label"
			[[ $cur != -* ]] && _filedir pem
			;;
		delete) opts="--id" ;;
		*) opts= ;;
		esac
		;;
	enroll)
		opts="--service --invitation --token --key-type --contract-id
		    --user-id --secrets-stdin --resume"
		;;
	renew) opts="--credential --now" ;;
	service)
		if [[ -z $sub ]]; then
			COMPREPLY=($(compgen -W 'add' -- "$cur"))
			return
		fi
		opts="--trust-fingerprint"
		;;
	browser)
		if [[ -z $sub ]]; then
			COMPREPLY=($(compgen -W 'setup' -- "$cur"))
			return
		fi
		opts="--undo --system --json --dry-run --root --url --issuer-cn"
		;;
	admin)
		if [[ -z $sub ]]; then
			COMPREPLY=($(compgen -W 'enroll login users user-add
			    reissue revoke keep unlock otp audit logout status' \
			    -- "$cur"))
			return
		fi
		case $sub in
		enroll)
			opts="--service --invitation --token --key-type
			    --contract-id --user-id --secrets-stdin --resume"
			;;
		login) opts="--service --token --id" ;;
		reissue) opts="--reason" ;;
		user-add) opts="--name" ;;
		*) opts= ;;
		esac
		;;
	doctor) opts="--json" ;;
	config)
		[[ -z $sub ]] && COMPREPLY=($(compgen -W 'check' -- "$cur"))
		return
		;;
	*) opts= ;;
	esac
	if [[ $cur == -* && -n $opts ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	fi
}
complete -F _p11enroll p11enroll

# ex: filetype=sh
