from mobilebuild.cli import main

main()
